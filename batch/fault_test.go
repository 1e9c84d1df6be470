package batch_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
)

func TestParseFaults(t *testing.T) {
	if f, err := batch.ParseFaults(""); f != nil || err != nil {
		t.Fatal("no FLIGHTBATCH_FAULTS must mean no fault hook")
	}
	for _, bad := range []string{"part-00001", "part-00001:x", ":2", "p:sleep=x", "p:-1"} {
		if _, err := batch.ParseFaults(bad); err == nil {
			t.Errorf("ParseFaults(%q) accepted a malformed spec", bad)
		}
	}
	f, err := batch.ParseFaults("part-00001:2, part-00002:always,*:sleep=30")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for attempt, want := range []bool{true, true, false} {
		if err := f(ctx, "job", "part-00001", attempt+1); (err != nil) != want {
			t.Errorf("part-00001 attempt %d: %v", attempt+1, err)
		}
	}
	if err := f(ctx, "job", "part-00002", 99); err == nil {
		t.Error("part-00002:always passed")
	}
	// A sleeping attempt ends as soon as its child is cancelled.
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	if err := f(cctx, "job", "part-00007", 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled sleep returned %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled sleep took %s", d)
	}
}
