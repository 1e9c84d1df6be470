package flight

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/pkg/api"
)

// Role is what a token may do.
type Role int

const (
	// RoleRead may list, describe and read datasets and results, and follow jobs.
	RoleRead Role = iota + 1
	// RoleSubmit may do everything RoleRead may, and submit and cancel jobs
	// and upload datasets.
	RoleSubmit
)

func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleSubmit:
		return "submit"
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole parses "read" or "submit".
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "submit":
		return RoleSubmit, nil
	}
	return 0, fmt.Errorf("unknown role %q: use read or submit", s)
}

// Token is one caller the server knows: a name, the SHA-256 of its secret
// bearer token, and a role. The secret itself is never held.
type Token struct {
	Name   string
	SHA256 [sha256.Size]byte
	Role   Role
}

// Certificate is one caller the server knows by the subject of its client
// certificate (with mutual TLS), and the role it has.
type Certificate struct {
	Name string
	// Subject is the certificate subject in RFC 2253 form, as Go's
	// pkix.Name.String and `openssl x509 -noout -subject -nameopt RFC2253`
	// print it: "CN=alice,O=Neurology Lab".
	Subject string
	Role    Role
}

// Auth checks bearer tokens and client certificates. A nil *Auth means
// authentication is off: every call is allowed and no header is read.
type Auth struct {
	tokens []Token
	certs  []Certificate
	// file, for an Auth from LoadAuth, is its token file, read again when it
	// changes; it then holds the lists.
	file *tokenFile
}

// tokenFile is a token file and the lists last read from it.
type tokenFile struct {
	path  string
	log   *slog.Logger
	now   func() time.Time
	every time.Duration

	mu      sync.Mutex
	checked time.Time // when the file was last stat'ed
	// statFailed is set while the file cannot be stat'ed (logged once).
	statFailed bool
	mod        time.Time
	size       int64
	tokens     []Token
	certs      []Certificate
}

// DefaultAuthCheckEvery is how often, at most, a server looks at its token
// file for a change: an edit takes effect within this interval.
const DefaultAuthCheckEvery = time.Second

// AuthFileOptions tune LoadAuthFile.
type AuthFileOptions struct {
	// Log (nil: slog.Default()) says when the file is reloaded, or refused.
	Log *slog.Logger
	// CheckEvery is how often, at most, the file is stat'ed for a change
	// (default DefaultAuthCheckEvery); calls in between use the lists last
	// read.
	CheckEvery time.Duration
	// Now is the clock of those checks (default time.Now).
	Now func() time.Time
}

// lists returns the callers a knows: those of its token file as it was when
// last checked, at most CheckEvery ago. An edited file is read again (its
// modification time or size changed); one that does not parse (say,
// half-written) is logged and the callers of the last one that did are kept.
// A file that lists nobody lets nobody in.
func (a *Auth) lists() ([]Token, []Certificate) {
	f := a.file
	if f == nil {
		return a.tokens, a.certs
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if d := now.Sub(f.checked); d >= 0 && d < f.every {
		return f.tokens, f.certs
	}
	f.checked = now
	fi, err := os.Stat(f.path)
	if err != nil {
		if !f.statFailed {
			f.log.Warn("auth: the token file cannot be read; the callers it listed before keep their access", "file", f.path, "err", err)
		}
		f.statFailed = true
		return f.tokens, f.certs
	}
	f.statFailed = false
	if fi.ModTime().Equal(f.mod) && fi.Size() == f.size {
		return f.tokens, f.certs
	}
	f.mod, f.size = fi.ModTime(), fi.Size()
	data, err := os.ReadFile(f.path)
	var tokens []Token
	var certs []Certificate
	if err == nil {
		tokens, certs, err = parseLists(data)
	}
	if err == nil {
		err = checkLists(tokens, certs)
	}
	if err != nil {
		f.log.Warn("auth: the changed token file does not load; the callers it listed before keep their access", "file", f.path, "err", err)
		return f.tokens, f.certs
	}
	f.tokens, f.certs = tokens, certs
	f.log.Info("auth: token file reloaded", "file", f.path, "tokens", len(tokens), "certificates", len(certs))
	return f.tokens, f.certs
}

// NewAuth returns an Auth over tokens; names and hashes must be unique.
func NewAuth(tokens []Token) (*Auth, error) {
	return NewAuthWithCertificates(tokens, nil)
}

// NewAuthWithCertificates returns an Auth over tokens and client
// certificates; names, hashes and subjects must be unique.
func NewAuthWithCertificates(tokens []Token, certs []Certificate) (*Auth, error) {
	if len(tokens) == 0 && len(certs) == 0 {
		return nil, errors.New("auth: no tokens and no certificates: list at least one, or turn authentication off")
	}
	if err := checkLists(tokens, certs); err != nil {
		return nil, err
	}
	return &Auth{tokens: append([]Token(nil), tokens...), certs: append([]Certificate(nil), certs...)}, nil
}

// checkLists checks that names, hashes and subjects are unique and roles known.
func checkLists(tokens []Token, certs []Certificate) error {
	names := map[string]bool{}
	subjects := map[string]bool{}
	for i, c := range certs {
		if c.Name == "" {
			return fmt.Errorf("auth: certificate %d has no name", i)
		}
		if names[c.Name] {
			return fmt.Errorf("auth: name %q appears twice", c.Name)
		}
		names[c.Name] = true
		if c.Subject == "" {
			return fmt.Errorf("auth: certificate %q has no subject", c.Name)
		}
		if subjects[c.Subject] {
			return fmt.Errorf("auth: subject %q appears twice", c.Subject)
		}
		subjects[c.Subject] = true
		if c.Role != RoleRead && c.Role != RoleSubmit {
			return fmt.Errorf("auth: certificate %q: unknown role %v", c.Name, c.Role)
		}
	}
	hashes := map[[sha256.Size]byte]string{}
	for i, t := range tokens {
		if t.Name == "" {
			return fmt.Errorf("auth: token %d has no name", i)
		}
		if names[t.Name] {
			return fmt.Errorf("auth: token name %q appears twice", t.Name)
		}
		names[t.Name] = true
		if other, ok := hashes[t.SHA256]; ok {
			return fmt.Errorf("auth: tokens %q and %q have the same sha256", other, t.Name)
		}
		hashes[t.SHA256] = t.Name
		if t.Role != RoleRead && t.Role != RoleSubmit {
			return fmt.Errorf("auth: token %q: unknown role %v", t.Name, t.Role)
		}
	}
	return nil
}

// HasCertificates reports whether a lists client certificates.
func (a *Auth) HasCertificates() bool {
	if a == nil {
		return false
	}
	_, certs := a.lists()
	return len(certs) > 0
}

// tokensFile is the JSON of a token file.
type tokensFile struct {
	Tokens       []tokenJSON `json:"tokens"`
	Certificates []certJSON  `json:"certificates"`
}

type certJSON struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Role    string `json:"role"`
}

type tokenJSON struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Role   string `json:"role"`
}

// TokenLine is the JSON line of a token file entry for a secret token.
func TokenLine(name, token string, role Role) string {
	sum := sha256.Sum256([]byte(token))
	b, _ := json.Marshal(tokenJSON{Name: name, SHA256: hex.EncodeToString(sum[:]), Role: role.String()})
	return string(b)
}

// ParseAuth parses a token file:
//
//	{"tokens": [{"name": "alice", "sha256": "<hex of sha256(token)>", "role": "read"}],
//	 "certificates": [{"name": "bob", "subject": "CN=bob,O=Lab", "role": "submit"}]}
//
// Either list may be left out. Unknown keys, a hash that is not 64 hex
// digits, an unknown role and a name, hash or subject given twice are errors.
func ParseAuth(data []byte) (*Auth, error) {
	tokens, certs, err := parseLists(data)
	if err != nil {
		return nil, err
	}
	return NewAuthWithCertificates(tokens, certs)
}

// parseLists reads the callers of a token file (see ParseAuth).
func parseLists(data []byte) ([]Token, []Certificate, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f tokensFile
	if err := dec.Decode(&f); err != nil {
		return nil, nil, fmt.Errorf(`auth: token file: %s; want {"tokens": [{"name": ..., "sha256": ..., "role": "read" or "submit"}], "certificates": [{"name": ..., "subject": "CN=...", "role": ...}]}`, strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return nil, nil, errors.New("auth: token file: text after the JSON object")
	}
	tokens := make([]Token, len(f.Tokens))
	for i, tj := range f.Tokens {
		t := Token{Name: tj.Name}
		if t.Name == "" {
			return nil, nil, fmt.Errorf("auth: token %d has no name", i)
		}
		sum, err := hex.DecodeString(tj.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, nil, fmt.Errorf("auth: token %q: sha256 must be 64 hex digits (the hex of sha256(token), as 'flightbatch token' prints)", t.Name)
		}
		copy(t.SHA256[:], sum)
		if t.Role, err = ParseRole(tj.Role); err != nil {
			return nil, nil, fmt.Errorf("auth: token %q: %w", t.Name, err)
		}
		tokens[i] = t
	}
	certs := make([]Certificate, len(f.Certificates))
	for i, cj := range f.Certificates {
		c := Certificate{Name: cj.Name, Subject: cj.Subject}
		if c.Name == "" {
			return nil, nil, fmt.Errorf("auth: certificate %d has no name", i)
		}
		var err error
		if c.Role, err = ParseRole(cj.Role); err != nil {
			return nil, nil, fmt.Errorf("auth: certificate %q: %w", c.Name, err)
		}
		certs[i] = c
	}
	return tokens, certs, nil
}

// LoadAuth reads and parses a token file, and reads it again whenever it
// changes (its modification time or size), so that an edit takes effect
// without a restart: a token removed from the file is refused within
// DefaultAuthCheckEvery. log (nil: slog.Default()) says when it is reloaded,
// or refused.
func LoadAuth(path string, log *slog.Logger) (*Auth, error) {
	return LoadAuthFile(path, AuthFileOptions{Log: log})
}

// LoadAuthFile is LoadAuth with options: the file is stat'ed at most once
// per o.CheckEvery, however many calls the server takes.
func LoadAuthFile(path string, o AuthFileOptions) (*Auth, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = DefaultAuthCheckEvery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	a, err := ParseAuth(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	a.file = &tokenFile{path: path, log: log, now: o.Now, every: o.CheckEvery, checked: o.Now(), mod: fi.ModTime(), size: fi.Size(), tokens: a.tokens, certs: a.certs}
	return a, nil
}

// Caller is the authenticated caller of a call.
type Caller struct {
	Name string
	Role Role
}

type callerKey struct{}

// CallerFrom returns the caller the auth interceptors put in ctx, if any.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

const authHelp = "send the header authorization: Bearer <token>"

// PeerSubject is the subject (RFC 2253) of the client certificate verified
// for the call's connection with mutual TLS, or "".
func PeerSubject(ctx context.Context) string {
	s, _ := ctx.Value(subjectKey{}).(string)
	return s
}

type subjectKey struct{}

// authenticate finds the caller of the bearer token in ctx's metadata or,
// without one, of the verified client certificate of the connection.
func (a *Auth) authenticate(ctx context.Context) (Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		if subject := PeerSubject(ctx); subject != "" {
			if c, ok := a.bySubject(subject); ok {
				return c, nil
			}
			return Caller{}, status.Errorf(codes.Unauthenticated, "the client certificate %q is not listed by the server: %s, or use a listed certificate", truncate(subject, 120), authHelp)
		}
		return Caller{}, status.Error(codes.Unauthenticated, "authentication required: "+authHelp)
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return Caller{}, status.Error(codes.Unauthenticated, "the authorization header is not a bearer token: "+authHelp)
	}
	c, ok := a.AuthenticateToken(tok)
	if !ok {
		return Caller{}, status.Error(codes.Unauthenticated, "unknown token: "+authHelp+" with a token the server lists")
	}
	return c, nil
}

// bySubject finds the caller of a certificate subject.
func (a *Auth) bySubject(subject string) (Caller, bool) {
	_, certs := a.lists()
	for _, c := range certs {
		if c.Subject == subject {
			return Caller{Name: c.Name, Role: c.Role}, true
		}
	}
	return Caller{}, false
}

// truncate shortens s to at most n bytes for a message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// AuthenticateToken finds the caller of a bearer token, for the HTTP pages:
// the same tokens as the Flight service.
func (a *Auth) AuthenticateToken(token string) (Caller, bool) {
	sum := sha256.Sum256([]byte(token))
	tokens, _ := a.lists()
	found := -1
	for i := range tokens {
		// Every entry is compared, so the time taken does not say which matched.
		if subtle.ConstantTimeCompare(sum[:], tokens[i].SHA256[:]) == 1 {
			found = i
		}
	}
	if found < 0 || token == "" {
		return Caller{}, false
	}
	return Caller{Name: tokens[found].Name, Role: tokens[found].Role}, true
}

// AuthenticateSubject finds the caller of a verified client certificate's
// subject, for the HTTP pages.
func (a *Auth) AuthenticateSubject(subject string) (Caller, bool) {
	if subject == "" {
		return Caller{}, false
	}
	return a.bySubject(subject)
}

// authorize checks that ctx's caller holds the role need to do what. With
// authentication off (a nil Auth) it allows everything.
func (a *Auth) authorize(ctx context.Context, need Role, what string) error {
	if a == nil {
		return nil
	}
	c, ok := CallerFrom(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "authentication required: "+authHelp)
	}
	if c.Role < need {
		return status.Errorf(codes.PermissionDenied, "%s needs a token with role %s; the token of %q has role %s", what, need, c.Name, c.Role)
	}
	return nil
}

// methodRole is the role a Flight method needs before its handler runs.
// DoAction and PollFlightInfo need more for some requests; their handlers
// check that.
func methodRole(fullMethod string) (Role, string) {
	name := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	switch name {
	case "DoPut", "DoExchange":
		return RoleSubmit, name
	}
	return RoleRead, name
}

// ServerOptions are the gRPC server options that authenticate every call:
// unary and stream interceptors that read the bearer token, refuse a call
// without a known one (Unauthenticated) or whose method needs a role the
// token lacks (PermissionDenied), and put the Caller in the call's context.
// A nil Auth gives none.
func (a *Auth) ServerOptions() []grpc.ServerOption {
	if a == nil {
		return nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(a.unary),
		grpc.ChainStreamInterceptor(a.stream),
	}
}

func (a *Auth) check(ctx context.Context, fullMethod string) (context.Context, error) {
	if isHealth(fullMethod) {
		// Load balancers and orchestrators probe health without credentials;
		// the answer says nothing about the data.
		return ctx, nil
	}
	c, err := a.authenticate(ctx)
	if err != nil {
		return nil, err
	}
	recordFrom(ctx).setCaller(c.Name)
	ctx = context.WithValue(ctx, callerKey{}, c)
	need, name := methodRole(fullMethod)
	if err := a.authorize(ctx, need, name); err != nil {
		return nil, err
	}
	return ctx, nil
}

func (a *Auth) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a *Auth) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &callerStream{ServerStream: ss, ctx: ctx})
}

// callerStream is a server stream whose context carries the caller.
type callerStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *callerStream) Context() context.Context { return s.ctx }

// actionRole is the role one of the server's own actions needs (a function's
// action needs RoleSubmit).
func actionRole(typ string) Role {
	switch typ {
	case api.ActionRun, api.ActionCancelJob, api.ActionRegister, api.ActionDeleteJob:
		return RoleSubmit
	}
	return RoleRead
}

// callerName names ctx's caller for logs and manifests ("" with auth off).
func callerName(ctx context.Context) string {
	c, _ := CallerFrom(ctx)
	return c.Name
}
