package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestServeRefusesImpossibleCounts: serve refuses --workers, --max-attempts,
// --demo-shards and --demo-mb below 1 (and a demo of more shards than an
// upload may have), naming the flag, rather than running with another number
// than the one given (1 worker, 3 attempts, 8 shards) and saying nothing.
func TestServeRefusesImpossibleCounts(t *testing.T) {
	for _, args := range [][]string{
		{"--workers", "0"},
		{"--workers", "-1"},
		{"--max-attempts", "0"},
		{"--max-attempts", "-3"},
		{"--demo-shards", "0"},
		{"--demo-shards", "100000000"},
		{"--demo-mb", "-1"},
		{"--progress-interval", "0s"},
	} {
		// A server that starts is stopped after a while: it took the flags.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var out, errb bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }}
		err := m.Run(ctx, append([]string{"serve", "--demo", "--addr", "127.0.0.1:0", "--store", "file://" + t.TempDir()}, args...))
		cancel()
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("serve %s: %v, want a refusal naming %s", strings.Join(args, " "), err, args[0])
		}
	}
}
