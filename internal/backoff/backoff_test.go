package backoff_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/internal/backoff"
)

func TestDelayGrowsWithJitterUnderTheCap(t *testing.T) {
	p := backoff.Policy{Initial: 100 * time.Millisecond, Max: 2 * time.Second}
	for n := 1; n <= 40; n++ {
		ceiling := min(100*time.Millisecond<<min(n-1, 20), 2*time.Second)
		seen := map[time.Duration]bool{}
		for range 200 {
			d := p.Delay(n)
			if d < ceiling/10 || d > ceiling {
				t.Fatalf("Delay(%d) = %s, want within [%s, %s]", n, d, ceiling/10, ceiling)
			}
			seen[d] = true
		}
		if len(seen) < 50 {
			t.Errorf("Delay(%d) took %d distinct values in 200 draws; want jitter", n, len(seen))
		}
	}
}

func TestDo(t *testing.T) {
	transient := errors.New("transient")
	permanent := errors.New("permanent")
	fast := backoff.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Budget: time.Minute,
		Retryable: func(err error) bool { return !errors.Is(err, permanent) }}
	for _, tt := range []struct {
		name      string
		policy    backoff.Policy
		fails     int // tries that fail before one succeeds
		err       error
		wantTries int
		wantErr   string
	}{
		{"success at once", fast, 0, transient, 1, ""},
		{"transient then success", fast, 5, transient, 6, ""},
		{"permanent is not retried", fast, 5, permanent, 1, "permanent"},
		{"budget spent", backoff.Policy{Initial: 20 * time.Millisecond, Max: 20 * time.Millisecond, Budget: 50 * time.Millisecond}, 1 << 30, transient, 0, "gave up after"},
		{"negative budget tries once", backoff.Policy{Budget: -1}, 3, transient, 1, "transient"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tries := 0
			err := tt.policy.Do(context.Background(), func(context.Context) error {
				tries++
				if tries <= tt.fails {
					return tt.err
				}
				return nil
			})
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, tt.err)) {
				t.Errorf("Do = %v, want %q", err, tt.wantErr)
			}
			if tt.wantTries > 0 && tries != tt.wantTries {
				t.Errorf("%d tries, want %d", tries, tt.wantTries)
			}
			if tt.wantTries == 0 && tries < 2 {
				t.Errorf("%d tries before the budget was spent, want several", tries)
			}
		})
	}
}

func TestDoStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tries := 0
	err := backoff.Policy{Initial: time.Hour, Max: time.Hour}.Do(ctx, func(context.Context) error {
		tries++
		if tries == 1 {
			time.AfterFunc(10*time.Millisecond, cancel)
		}
		return errors.New("down")
	})
	if err == nil || tries != 1 {
		t.Errorf("cancelled Do = %v after %d tries, want the error after 1", err, tries)
	}
}
