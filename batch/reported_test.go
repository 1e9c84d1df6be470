package batch_test

import (
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
)

// TestReportedChanges: Reported passes every child at its first call, then
// a child only when its state, attempts or failed attempts changed; an
// error's text dropped once reported (HandOverErrors) is no change.
func TestReportedChanges(t *testing.T) {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	fail := func(n int, text string) batch.AttemptError {
		return batch.AttemptError{Attempt: n, Error: text, At: at.Add(time.Duration(n) * time.Second)}
	}
	pending := batch.Child{Shard: 0, State: batch.ShardPending}
	running := batch.Child{Shard: 0, State: batch.ShardRunning, Attempts: 1}
	failed := batch.Child{Shard: 0, State: batch.ShardRunning, Attempts: 2, Errors: []batch.AttemptError{fail(1, "boom")}}
	handed := batch.Child{Shard: 0, State: batch.ShardRunning, Attempts: 2, Errors: []batch.AttemptError{fail(1, "")}}
	other := batch.Child{Shard: 1, State: batch.ShardPending}
	var r batch.Reported
	for i, c := range []struct {
		children []batch.Child
		want     int
	}{
		{[]batch.Child{pending, other}, 2}, // the first report: every child
		{[]batch.Child{pending, other}, 0},
		{[]batch.Child{running, other}, 1},
		{[]batch.Child{running, other}, 0},
		{[]batch.Child{failed, other}, 1},
		{[]batch.Child{handed, other}, 0},
		{[]batch.Child{handed, other, {Shard: 2, State: batch.ShardPending}}, 1}, // a child not seen before
	} {
		p := r.Changes(batch.Progress{Children: c.children})
		if len(p.Children) != c.want {
			t.Errorf("report %d: %d children, want %d: %+v", i+1, len(p.Children), c.want, p.Children)
		}
	}
}
