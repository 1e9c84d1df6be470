package flight_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// waitAnswer is a job-wait call's answer and when it came.
type waitAnswer struct {
	st  api.JobStatus
	err error
	at  time.Time
}

// TestJobWaitAnswersWhenJobEnds holds a job's first shard: job-wait stays
// held while the job runs and answers SUCCEEDED as soon as it ends, long
// before its timeout.
func TestJobWaitAnswersWhenJobEnds(t *testing.T) {
	g := newGate("part-00000")
	srv := testserver.Start(t, testserver.Options{Fault: g.fault})
	c := dial(t, srv.Addr)
	id := submitPSD(t, c, nil).JobID

	done := make(chan waitAnswer, 1)
	go func() {
		var st api.JobStatus
		err := action(context.Background(), c, api.ActionJobWait, map[string]any{"job_id": id, "timeout_s": 60}, &st)
		done <- waitAnswer{st, err, time.Now()}
	}()
	// The gate is shut: nothing can end the wait but the 60 s timeout.
	select {
	case a := <-done:
		t.Fatalf("job-wait answered %s (%v) while the job could not end", a.st.State, a.err)
	case <-time.After(300 * time.Millisecond):
	}
	opened := time.Now()
	g.open("part-00000")
	select {
	case a := <-done:
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.st.State != "SUCCEEDED" || a.st.JobID != id || a.st.Shards.Succeeded != a.st.Shards.Total {
			t.Errorf("job-wait = %+v, want the SUCCEEDED job's status", a.st)
		}
		if d := a.at.Sub(opened); d > 30*time.Second {
			t.Errorf("job-wait answered %s after the job could end; it must not wait out its timeout", d)
		}
		// The same answer as job-status gives.
		want := jobStatus(t, c, id)
		gotJSON, _ := json.Marshal(a.st)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("job-wait = %s\njob-status = %s", gotJSON, wantJSON)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("job-wait did not answer after the job ended")
	}
}

// TestJobWaitTimeouts: a job that does not end is answered as it is when
// the timeout passes (0: at once), and an ended job at once whatever the
// timeout.
func TestJobWaitTimeouts(t *testing.T) {
	g := newGate("part-00001")
	srv := testserver.Start(t, testserver.Options{Fault: g.fault})
	c := dial(t, srv.Addr)
	running := submitPSD(t, c, nil).JobID
	tests := []struct {
		name    string
		body    map[string]any
		atLeast time.Duration
	}{
		{"zero answers at once", map[string]any{"job_id": running, "timeout_s": 0}, 0},
		{"a short timeout", map[string]any{"job_id": running, "timeout_s": 0.3}, 300 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			var st api.JobStatus
			mustAction(t, c, api.ActionJobWait, tc.body, &st)
			if d := time.Since(start); d < tc.atLeast {
				t.Errorf("answered after %s, before the %s timeout", d, tc.atLeast)
			}
			if st.JobID != running || (st.State != "SUBMITTED" && st.State != "RUNNING") {
				t.Errorf("status = %+v, want the running job's", st)
			}
		})
	}
	g.open("part-00001")
	waitState(t, c, running, 60*time.Second)
	// Ended: answered at once, not after 60 s (the test's own bound leaves
	// far more slack than a loaded machine needs).
	start := time.Now()
	var st api.JobStatus
	mustAction(t, c, api.ActionJobWait, map[string]any{"job_id": running, "timeout_s": 60}, &st)
	if st.State != "SUCCEEDED" {
		t.Errorf("state = %s, want SUCCEEDED", st.State)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("an ended job's job-wait took %s", d)
	}
}

// TestJobWaitRefusesBadBodies: every malformed body is refused with a status
// that says what to give.
func TestJobWaitRefusesBadBodies(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	c := dial(t, srv.Addr)
	tests := []struct {
		name, body string
		code       codes.Code
		msg        string
	}{
		{"no job", `{}`, codes.InvalidArgument, `give "job_id"`},
		{"negative timeout", `{"job_id": "20261124T184501123Z-9f2c1a", "timeout_s": -1}`, codes.InvalidArgument, "0 to 60 seconds"},
		{"timeout over the bound", `{"job_id": "20261124T184501123Z-9f2c1a", "timeout_s": 61}`, codes.InvalidArgument, "0 to 60 seconds"},
		{"timeout not a number", `{"job_id": "20261124T184501123Z-9f2c1a", "timeout_s": "10"}`, codes.InvalidArgument, "timeout_s"},
		{"huge timeout", `{"job_id": "20261124T184501123Z-9f2c1a", "timeout_s": 1e400}`, codes.InvalidArgument, ""},
		{"unknown field", `{"job_id": "20261124T184501123Z-9f2c1a", "hold": 5}`, codes.InvalidArgument, "hold"},
		{"not an ID", `{"job_id": "../../etc"}`, codes.NotFound, "job IDs look like"},
		{"no such job", `{"job_id": "20261124T184501123Z-9f2c1a", "timeout_s": 5}`, codes.NotFound, "20261124T184501123Z-9f2c1a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := action(context.Background(), c, api.ActionJobWait, json.RawMessage(tc.body), nil)
			if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.msg) {
				t.Errorf("job-wait %s: %v, want %s saying %q", tc.body, err, tc.code, tc.msg)
			}
		})
	}
}

// TestJobWaitBoundsWaiters: with room for one held call, a second is
// refused with ResourceExhausted; the first's place is freed when its client
// goes away, and the server's stop ends a held call at once.
func TestJobWaitBoundsWaiters(t *testing.T) {
	g := newGate("part-00000")
	srv := testserver.Start(t, testserver.Options{Fault: g.fault, MaxJobWaiters: 1})
	c := dial(t, srv.Addr)
	id := submitPSD(t, c, nil).JobID
	body := map[string]any{"job_id": id, "timeout_s": 60}

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	holdFirst := func() { go func() { first <- action(ctx, c, api.ActionJobWait, body, nil) }() }
	holdFirst()
	// Until the first call is held, a probe may be held instead and the
	// first refused: start it again then, and probe until a probe is
	// refused, which only the first held can cause.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-first:
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("the first job-wait ended: %v", err)
			}
			holdFirst()
		default:
		}
		err := action(context.Background(), c, api.ActionJobWait, map[string]any{"job_id": id, "timeout_s": 0.05}, nil)
		if status.Code(err) == codes.ResourceExhausted {
			if !strings.Contains(status.Convert(err).Message(), "poll job-status") {
				t.Errorf("message %q does not say what to do", status.Convert(err).Message())
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("a second job-wait was never refused while the first was held")
		}
	}
	// A call that does not hold (timeout 0) is answered whatever the count.
	var st api.JobStatus
	mustAction(t, c, api.ActionJobWait, map[string]any{"job_id": id, "timeout_s": 0}, &st)
	if st.JobID != id {
		t.Errorf("job-wait with timeout 0 = %+v", st)
	}

	// The client goes away: its place is given back.
	cancel()
	if err := <-first; status.Code(err) != codes.Canceled {
		t.Errorf("cancelled job-wait: %v, want Canceled", err)
	}
	// A probe that is let in shows the place given back (probes run one
	// at a time, so none of them holds it).
	probe := map[string]any{"job_id": id, "timeout_s": 0.05}
	deadline = time.Now().Add(30 * time.Second)
	for {
		err := action(context.Background(), c, api.ActionJobWait, probe, nil)
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("job-wait after the first client left: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the place of a client that went away was never given back")
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Hold a call again, and make sure it is held as above: a refused probe
	// shows it (the call is started again if a probe took its place).
	held := make(chan waitAnswer, 1)
	holdAgain := func() {
		go func() {
			var st api.JobStatus
			err := action(context.Background(), c, api.ActionJobWait, body, &st)
			held <- waitAnswer{st, err, time.Now()}
		}()
	}
	holdAgain()
	deadline = time.Now().Add(30 * time.Second)
	for {
		select {
		case a := <-held:
			if status.Code(a.err) != codes.ResourceExhausted {
				t.Fatalf("held job-wait ended: %+v, %v", a.st, a.err)
			}
			holdAgain()
		default:
		}
		err := action(context.Background(), c, api.ActionJobWait, probe, nil)
		if status.Code(err) == codes.ResourceExhausted {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the second held job-wait was never held")
		}
	}

	// The server stops waiting: the held call answers the job as it is.
	stopped := time.Now()
	srv.Flight.StopWaiting()
	select {
	case a := <-held:
		if a.err != nil || a.st.JobID != id || a.st.State == "SUCCEEDED" {
			t.Errorf("held job-wait at the server's stop = %+v, %v; want the running job's status", a.st, a.err)
		}
		if d := a.at.Sub(stopped); d > 30*time.Second {
			t.Errorf("held job-wait answered %s after the stop", d)
		}
	case <-time.After(50 * time.Second):
		t.Fatal("held job-wait did not end when the server stopped waiting")
	}
	g.open("part-00000")
}
