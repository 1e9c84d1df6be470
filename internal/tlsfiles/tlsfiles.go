// Package tlsfiles builds TLS configurations from PEM files: a server's that
// reads its certificate, key and client CA again whenever one of the files
// changes (so a renewed certificate takes effect without a restart), and a
// client's from a CA file and an optional client certificate.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// Server serves the certificate in CertFile and KeyFile and, when ClientCAFile
// is set, asks every client for a certificate, which VerifyClient checks
// against the CAs in it (mutual TLS). Each handshake checks the files' modification times and
// sizes; when one changed the files are read again. A change that does not
// load (a certificate written before its key) is logged and the previous
// configuration kept until the next change.
type Server struct {
	certFile, keyFile, caFile string
	log                       *slog.Logger

	mu    sync.Mutex
	stamp [3]fileStamp
	cur   *tls.Config
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewServer reads the files once; an error says which file is wrong.
func NewServer(certFile, keyFile, clientCAFile string, log *slog.Logger) (*Server, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("tls: give both a certificate and a key file")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{certFile: certFile, keyFile: keyFile, caFile: clientCAFile, log: log}
	stamp, err := s.stat()
	if err != nil {
		return nil, err
	}
	cfg, err := s.load()
	if err != nil {
		return nil, err
	}
	s.stamp, s.cur = stamp, cfg
	return s, nil
}

// MutualTLS reports whether clients must present a certificate.
func (s *Server) MutualTLS() bool { return s.caFile != "" }

// Config is a server configuration that offers the ALPN protocols
// nextProtos ("h2" for gRPC; "h2", "http/1.1" for HTTP) and takes the
// current files at each handshake.
func (s *Server) Config(nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := s.current().Clone()
			c.NextProtos = nextProtos
			return c, nil
		},
	}
}

func (s *Server) current() *tls.Config {
	s.mu.Lock()
	defer s.mu.Unlock()
	stamp, err := s.stat()
	if err != nil {
		if stamp != s.stamp {
			s.log.Warn("tls: cannot read the certificate files; serving the previous ones", "err", err)
			s.stamp = stamp
		}
		return s.cur
	}
	if stamp == s.stamp {
		return s.cur
	}
	s.stamp = stamp
	cfg, err := s.load()
	if err != nil {
		s.log.Warn("tls: the changed certificate files do not load; serving the previous ones", "err", err)
		return s.cur
	}
	s.cur = cfg
	s.log.Info("tls: certificate files reloaded", "cert", s.certFile, "client_ca", s.caFile)
	return s.cur
}

func (s *Server) stat() ([3]fileStamp, error) {
	var out [3]fileStamp
	for i, f := range []string{s.certFile, s.keyFile, s.caFile} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		if err != nil {
			return out, fmt.Errorf("tls: %w", err)
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

func (s *Server) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: certificate %s with key %s: %w", s.certFile, s.keyFile, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if s.caFile != "" {
		pool, err := LoadPool(s.caFile)
		if err != nil {
			return nil, err
		}
		// The handshake asks for a certificate (naming the CAs) and checks
		// that the client holds its key; VerifyClient checks the chain, so
		// that a refused client learns why in a status message rather than
		// in a TLS alert that may race with its first write.
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg, nil
}

// ErrNoClientCertificate is returned by VerifyClient for a connection
// without a client certificate.
var ErrNoClientCertificate = errors.New("no client certificate: this server uses mutual TLS; present a certificate signed by a CA of its --tls-client-ca")

// VerifyClient checks the client certificate of a connection against the
// current client CAs, for client authentication, and returns it. Every
// request of a server with mutual TLS must pass it; the errors say what is
// wrong with the certificate.
func (s *Server) VerifyClient(cs tls.ConnectionState) (*x509.Certificate, error) {
	if s.caFile == "" {
		return nil, errors.New("tls: no client CA configured")
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, ErrNoClientCertificate
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	pool := s.current().ClientCAs
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err == nil {
		return leaf, nil
	}
	subject := leaf.Subject.String()
	if len(subject) > 120 {
		subject = subject[:120] + "..."
	}
	var invalid x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		now := time.Now()
		if now.Before(leaf.NotBefore) {
			return nil, fmt.Errorf("client certificate %q is not valid before %s: check the clocks", subject, leaf.NotBefore.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("client certificate %q expired at %s: renew it", subject, leaf.NotAfter.UTC().Format(time.RFC3339))
	case errors.As(err, &unknown):
		return nil, fmt.Errorf("client certificate %q is not signed by a CA the server trusts for clients (its issuer is %q)", subject, leaf.Issuer.String())
	}
	return nil, fmt.Errorf("client certificate %q refused: %w", subject, err)
}

// LoadPool reads a PEM file of CA certificates.
func LoadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// Client is a client configuration: the server's certificate is checked
// against the CAs in caFile (the system's CAs when caFile is empty), and the
// client presents the certificate in certFile with keyFile when they are set.
func Client(caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := LoadPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("tls: a client certificate needs both its certificate and its key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: client certificate %s with key %s: %w", certFile, keyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
