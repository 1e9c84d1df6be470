package tlsfiles_test

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/internal/testcerts"
	"github.com/flightbatch/flightbatch/internal/tlsfiles"
)

// handshake connects to a TLS listener with roots and returns the serial of
// the server's certificate, or the client's error.
func handshake(t *testing.T, addr string, cfg *tls.Config) (string, error) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	// With TLS 1.3 a refused client certificate shows at the first read.
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil && !strings.Contains(err.Error(), "timeout") {
		return "", err
	}
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

// serve runs a TLS listener whose connections wait for the client to close.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var b [1]byte
				_, _ = c.Read(b[:])
			}()
		}
	}()
	return lis.Addr().String()
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := testcerts.NewCA(t, "first"), testcerts.NewCA(t, "second")
	certFile, keyFile := ca1.Server(t).Write(t, dir, "server")
	s, err := tlsfiles.NewServer(certFile, keyFile, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s.Config("h2"))
	trust1 := &tls.Config{RootCAs: ca1.Pool(), ServerName: "localhost"}
	trust2 := &tls.Config{RootCAs: ca2.Pool(), ServerName: "localhost"}
	first, err := handshake(t, addr, trust1)
	if err != nil {
		t.Fatalf("first certificate: %v", err)
	}
	if _, err := handshake(t, addr, trust2); err == nil {
		t.Fatal("a client trusting only the second CA accepted the first certificate")
	}

	// A half-done renewal (the certificate written, the key not yet) keeps
	// the old pair in service.
	next := ca2.Server(t)
	if err := os.WriteFile(certFile, next.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	bump(t, certFile)
	if got, err := handshake(t, addr, trust1); err != nil || got != first {
		t.Fatalf("after writing only the certificate: serial %s, %v; want the old %s", got, err, first)
	}
	if err := os.WriteFile(keyFile, next.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	bump(t, keyFile)
	second, err := handshake(t, addr, trust2)
	if err != nil {
		t.Fatalf("after renewal: %v", err)
	}
	if second == first {
		t.Fatal("the renewed certificate has the old serial")
	}
	if _, err := handshake(t, addr, trust1); err == nil {
		t.Fatal("after renewal the old CA still verifies the server")
	}
}

// bump moves a file's modification time forward, as a later write would on
// a file system with a coarse clock.
func bump(t *testing.T, f string) {
	t.Helper()
	fi, err := os.Stat(f)
	if err != nil {
		t.Fatal(err)
	}
	mt := fi.ModTime().Add(2 * time.Second)
	if err := os.Chtimes(f, mt, mt); err != nil {
		t.Fatal(err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "lab"), testcerts.NewCA(t, "other")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	caFile := ca.WriteCA(t, dir, "clients")
	s, err := tlsfiles.NewServer(certFile, keyFile, caFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.MutualTLS() {
		t.Fatal("MutualTLS is false with a client CA")
	}
	states := make(chan tls.ConnectionState, 1)
	lis, err := tls.Listen("tcp", "127.0.0.1:0", s.Config("h2"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				states <- tc.ConnectionState()
			}
			tc.Close()
		}
	}()
	addr := lis.Addr().String()
	good, expired, stranger := ca.Client(t, "alice", "Lab"), ca.ExpiredClient(t, "old", "Lab"), other.Client(t, "mallory", "Elsewhere")
	for _, tc := range []struct {
		name string
		leaf *testcerts.Leaf
		want string // "" for success, else a part of the error
	}{
		{"valid client certificate", &good, ""},
		{"no client certificate", nil, "no client certificate"},
		{"expired client certificate", &expired, `client certificate "CN=old,O=Lab" expired at`},
		{"certificate of another CA", &stranger, `"CN=mallory,O=Elsewhere" is not signed by a CA the server trusts`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"}
			if tc.leaf != nil {
				// Sent whatever CAs the server names, as some clients do.
				cert := tc.leaf.TLS(t)
				c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
			}
			conn, err := tls.Dial("tcp", addr, c)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			var cs tls.ConnectionState
			select {
			case cs = <-states:
			case <-time.After(30 * time.Second):
				t.Fatal("the server saw no handshake")
			}
			leaf, err := s.VerifyClient(cs)
			switch {
			case tc.want == "" && (err != nil || leaf.Subject.CommonName != "alice"):
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, "lab")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	other, _ := ca.Server(t).Write(t, dir, "other")
	junk := dir + "/junk.pem"
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, cert, key, ca, want string
	}{
		{"missing key", certFile, "", "", "both"},
		{"key of another certificate", other, keyFile, "", "private key does not match"},
		{"no such file", dir + "/nope.crt", keyFile, "", "no such file"},
		{"client CA without certificates", certFile, keyFile, junk, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsfiles.NewServer(tc.cert, tc.key, tc.ca, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
	if _, err := tlsfiles.Client("", certFile, ""); err == nil {
		t.Error("a client certificate without a key was accepted")
	}
}
