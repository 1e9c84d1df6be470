package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/testcerts"
	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/internal/tlsfiles"
)

func TestClientTLSFlags(t *testing.T) {
	dir := t.TempDir()
	ca, other := testcerts.NewCA(t, "lab"), testcerts.NewCA(t, "other")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	caFile, otherFile := ca.WriteCA(t, dir, "ca"), other.WriteCA(t, dir, "other")
	clientCert, clientKey := ca.Client(t, "alice", "Lab").Write(t, dir, "alice")
	expiredCert, expiredKey := ca.ExpiredClient(t, "old", "Lab").Write(t, dir, "old")
	files, err := tlsfiles.NewServer(certFile, keyFile, caFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Shards: 2, Records: 8, TLS: files.Config("h2"), ClientCerts: files})
	addr := "grpc+tls://" + srv.Addr
	for _, tc := range []struct {
		name string
		args []string
		want string // "" for success, else a part of the error
	}{
		{"CA and client certificate", []string{"--addr", addr, "--tls-ca", caFile, "--tls-cert", clientCert, "--tls-key", clientKey}, ""},
		{"host:port with TLS flags", []string{"--addr", srv.Addr, "--tls-ca", caFile, "--tls-cert", clientCert, "--tls-key", clientKey}, ""},
		{"no client certificate", []string{"--addr", addr, "--tls-ca", caFile}, "no client certificate: this server uses mutual TLS"},
		{"expired client certificate", []string{"--addr", addr, "--tls-ca", caFile, "--tls-cert", expiredCert, "--tls-key", expiredKey}, `client certificate "CN=old,O=Lab" expired`},
		{"wrong CA", []string{"--addr", addr, "--tls-ca", otherFile, "--tls-cert", clientCert, "--tls-key", clientKey}, "certificate signed by unknown authority"},
		{"plaintext", []string{"--addr", "grpc://" + srv.Addr}, "cannot reach a flightbatch server"},
		{"cert without key", []string{"--addr", addr, "--tls-ca", caFile, "--tls-cert", clientCert}, "needs both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := run(t, append([]string{"datasets"}, tc.args...)...)
			if tc.want == "" {
				if err != nil || !strings.Contains(out, "demo") {
					t.Fatalf("datasets: %v\n%s", err, out)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("datasets: %v; want an error with %q", err, tc.want)
			}
		})
	}
}

func TestServeRefusesTokensInClearText(t *testing.T) {
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens.json")
	if err := os.WriteFile(tokens, []byte(`{"tokens": [`+flight.TokenLine("a", "secret", flight.RoleRead)+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "certs.json")
	if err := os.WriteFile(certs, []byte(`{"certificates": [{"name": "a", "subject": "CN=a", "role": "read"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := testcerts.NewCA(t, "lab")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"tokens on all interfaces", []string{"--addr", "0.0.0.0:0", "--auth-tokens", tokens}, "refusing to serve bearer tokens in clear text on 0.0.0.0:0"},
		{"tokens on an empty host", []string{"--addr", ":0", "--auth-tokens", tokens}, "refusing to serve bearer tokens"},
		{"tokens on an HTTP address off loopback", []string{"--http", "0.0.0.0:0", "--auth-tokens", tokens}, "refusing to serve bearer tokens in clear text on 0.0.0.0:0"},
		{"key without certificate", []string{"--tls-key", keyFile}, "--tls-cert and --tls-key go together"},
		{"client CA without TLS", []string{"--tls-client-ca", certFile}, "--tls-client-ca needs --tls-cert"},
		{"certificates without mutual TLS", []string{"--auth-tokens", certs, "--tls-cert", certFile, "--tls-key", keyFile}, "only --tls-client-ca"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, append([]string{"serve", "--store", "mem://"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve: %v; want an error with %q", err, tc.want)
			}
		})
	}
	for _, addr := range []string{"127.0.0.1:1", "[::1]:1", "localhost:1"} {
		if !loopback(addr) {
			t.Errorf("loopback(%q) = false", addr)
		}
	}
	for _, addr := range []string{"0.0.0.0:1", ":1", "10.0.0.1:1", "example.org:1"} {
		if loopback(addr) {
			t.Errorf("loopback(%q) = true", addr)
		}
	}
}
