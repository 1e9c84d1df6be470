package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesImpossibleCounts: serve refuses --workers and
// --max-attempts below 1, naming the flag, rather than running with another
// number than the one given (1 worker, 3 attempts) and saying nothing.
func TestServeRefusesImpossibleCounts(t *testing.T) {
	for _, args := range [][]string{
		{"--workers", "0"},
		{"--workers", "-1"},
		{"--max-attempts", "0"},
		{"--max-attempts", "-3"},
	} {
		// A server that starts is stopped after a while: it took the flags.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		err := m.Run(ctx, append([]string{"serve", "--addr", "127.0.0.1:0", "--store", "file://" + t.TempDir()}, args...))
		cancel()
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("serve %s: %v, want a refusal naming %s", strings.Join(args, " "), err, args[0])
		}
	}
}
