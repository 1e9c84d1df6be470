package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/testserver"
)

// TestTokenCommand makes a token with 'flightbatch token', lets it into a
// server, and uses it with --token and with FLIGHTBATCH_TOKEN.
func TestTokenCommand(t *testing.T) {
	out, _, err := run(t, "token", "--name", "dana", "--role", "read")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("token printed %q, want two lines", out)
	}
	tok := lines[0]
	auth, err := flight.ParseAuth([]byte(`{"tokens": [` + lines[1] + `]}`))
	if err != nil {
		t.Fatalf("the printed line: %v", err)
	}
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4, Auth: auth})

	if _, _, err := run(t, "jobs", "--addr", srv.Addr); err == nil || !strings.Contains(err.Error(), "Bearer") {
		t.Errorf("jobs without a token: %v, want an Unauthenticated error naming the header", err)
	}
	if _, _, err := run(t, "jobs", "--addr", srv.Addr, "--token", tok); err != nil {
		t.Errorf("jobs --token: %v", err)
	}
	var o, e bytes.Buffer
	m := &Main{Stdout: &o, Stderr: &e, Getenv: func(k string) string {
		if k == "FLIGHTBATCH_TOKEN" {
			return tok
		}
		return ""
	}}
	if err := m.Run(context.Background(), []string{"datasets", "--addr", srv.Addr}); err != nil {
		t.Errorf("datasets with FLIGHTBATCH_TOKEN: %v", err)
	}
	if _, _, err := run(t, "psd", "--addr", srv.Addr, "--token", tok, "--dataset", "demo", "--fs", "250"); err == nil || !strings.Contains(err.Error(), "role submit") {
		t.Errorf("psd with a read token: %v, want PermissionDenied naming role submit", err)
	}
	if _, _, err := run(t, "token", "--name", "x", "--role", "admin"); err == nil {
		t.Error("token --role admin: no error")
	}
	if _, _, err := run(t, "serve", "--auth-tokens", "/nonexistent/tokens.json"); err == nil || !strings.Contains(err.Error(), "--auth-tokens") {
		t.Errorf("serve with a missing token file: %v", err)
	}
}
