package slurm_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/batch/executortest"
	"github.com/flightbatch/flightbatch/batch/slurm"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// workerBin is a `flightbatch` binary built once for the tests that need a
// cluster: the children's command.
var workerBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv("FLIGHTBATCH_TEST_SLURM") == "" {
		return m.Run() // the cluster tests skip or fail on their own
	}
	dir, err := os.MkdirTemp("", "slurm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	workerBin = filepath.Join(dir, "flightbatch")
	_, file, _, _ := runtime.Caller(0)
	cmd := exec.Command("go", "build", "-o", workerBin, "./cmd/flightbatch")
	cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build flightbatch:", err)
		return 1
	}
	// The cluster tests mostly wait for the cluster (its scheduler, the
	// controller forgetting tasks), not for the CPU: all but the one that
	// takes the node down run side by side, more of them than the machine
	// has CPUs (the default of -parallel), unless -parallel says otherwise.
	flag.Parse()
	parallel := false
	flag.Visit(func(f *flag.Flag) { parallel = parallel || f.Name == "test.parallel" })
	if !parallel {
		if err := flag.Set("test.parallel", "16"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}

// needCluster skips a test without a test cluster (scripts/slurm.sh start,
// then source its env file), or fails it if FLIGHTBATCH_REQUIRE_SLURM=1.
func needCluster(t *testing.T) {
	t.Helper()
	if os.Getenv("FLIGHTBATCH_TEST_SLURM") != "" {
		return
	}
	msg := "no Slurm test cluster: start one with scripts/slurm.sh start DIR and source the env file it prints"
	if os.Getenv("FLIGHTBATCH_REQUIRE_SLURM") == "1" {
		t.Fatal("FLIGHTBATCH_REQUIRE_SLURM=1 but " + msg)
	}
	t.Skip(msg)
}

// needAccounting skips a test without a test cluster that keeps accounting
// (scripts/slurm.sh start --accounting), or fails it if
// FLIGHTBATCH_REQUIRE_SLURM=1.
func needAccounting(t *testing.T) {
	t.Helper()
	needCluster(t)
	if accounting() {
		return
	}
	msg := "the Slurm test cluster keeps no accounting: start it with scripts/slurm.sh start --accounting DIR"
	if os.Getenv("FLIGHTBATCH_REQUIRE_SLURM") == "1" {
		t.Fatal("FLIGHTBATCH_REQUIRE_SLURM=1 but " + msg)
	}
	t.Skip(msg)
}

func accounting() bool { return os.Getenv("FLIGHTBATCH_TEST_SLURM_ACCOUNTING") != "" }

// newExecutor returns an executor on the test cluster whose children inject
// faults, over a fresh file store, and the store. It reads sacct when the
// cluster keeps accounting (whose controller then forgets tasks soon).
func newExecutor(t *testing.T, faults string, opts *slurm.Options) (*slurm.Executor, *store.Store) {
	t.Helper()
	needCluster(t)
	dir := t.TempDir()
	// The children run as the cluster's user: let them into the test's directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	o := slurm.Options{}
	if opts != nil {
		o = *opts
	}
	o.WorkerCommand = workerBin + " worker --log-level debug"
	o.WorkerEnv = append(o.WorkerEnv, child.EnvFaults+"="+faults, child.EnvFunctions+"="+executortest.FunctionsFile(t))
	o.LogDir = t.TempDir()
	o.PollInterval = 200 * time.Millisecond
	o.Accounting = o.Accounting || accounting()
	e, err := slurm.New(st, &o)
	if err != nil {
		t.Fatal(err)
	}
	return e, st
}

// TestPollChangesAcrossRestart: PollChanges reports every child at its
// first call for a handle, also from an executor made afresh after a
// restart (over the same store and options), then only what changed.
func TestPollChangesAcrossRestart(t *testing.T) {
	t.Parallel()
	e, st := newExecutor(t, "", nil)
	h := &executortest.Harness{Store: st, Executor: e}
	executortest.ChangesAcrossRestart(t, h, func() batch.Executor {
		o := slurm.Opts(e)
		again, err := slurm.New(st, &o)
		if err != nil {
			t.Fatal(err)
		}
		return again
	})
}

// fullErrorShards lowers, for the conformance suite, the number of failed
// shards past which the executor drops their errors' text: a few children
// show the bound as well as the hundred of batch.MaxFullErrorShards, which
// take two minutes on the test cluster (the local executor's suite runs the
// full size).
const fullErrorShards = 5

func TestConformance(t *testing.T) {
	needCluster(t)
	t.Parallel()
	executortest.RunConformanceTests(t, func(t *testing.T, faults string) *executortest.Harness {
		e, st := newExecutor(t, faults, nil)
		slurm.SetFullErrorShards(e, fullErrorShards)
		return &executortest.Harness{Store: st, Executor: e, FullErrorShards: fullErrorShards}
	})
}

// wait polls handle until its children are done.
func wait(t *testing.T, e batch.Executor, handle string) batch.Progress {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := e.Poll(context.Background(), handle)
		if err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if p.Done {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("children not done after 90s: %+v", p)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A job larger than an array may be runs as several arrays.
func TestSplitArrays(t *testing.T) {
	t.Parallel()
	e, st := newExecutor(t, "", &slurm.Options{MaxArraySize: 2})
	h := &executortest.Harness{Store: st, Executor: e}
	m := executortest.NewJob(t, h, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Split(handle[strings.LastIndex(handle, ";")+1:], ",")
	if len(ids) != 2 {
		t.Fatalf("3 shards in arrays of 2: want 2 Slurm jobs, got handle %q", handle)
	}
	p := wait(t, e, handle)
	for _, c := range p.Children {
		if c.State != batch.ShardSucceeded {
			t.Errorf("shard %d: %s %+v", c.Shard, c.State, c.Errors)
		}
		if ok, _ := st.Exists(context.Background(), batch.PartKey(m.JobID, m.Shards[c.Shard].Name)); !ok {
			t.Errorf("shard %d: no part", c.Shard)
		}
	}
}

// A new executor (a restarted server) follows the arrays of an old handle,
// and a child failing for good is reported with its exit code and log.
func TestReattachAndFailureReport(t *testing.T) {
	t.Parallel()
	e, st := newExecutor(t, "part-00001:always,*:sleep=1", nil)
	h := &executortest.Harness{Store: st, Executor: e}
	m := executortest.NewJob(t, h, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	again, err := slurm.New(st, &slurm.Options{LogDir: slurm.LogDir(e), PollInterval: 200 * time.Millisecond, WorkerCommand: "false"})
	if err != nil {
		t.Fatal(err)
	}
	p := wait(t, again, handle)
	for _, c := range p.Children {
		want := batch.ShardSucceeded
		if c.Shard == 1 {
			want = batch.ShardFailed
		}
		if c.State != want || c.Attempts != 1 {
			t.Errorf("shard %d: %s after %d attempts, want %s after 1", c.Shard, c.State, c.Attempts, want)
		}
		if c.Shard == 1 {
			if len(c.Errors) != 1 {
				t.Fatalf("shard 1: want one error, got %+v", c.Errors)
			}
			msg := c.Errors[0].Error
			for _, want := range []string{"exit code 1", "injected fault", "log "} {
				if !strings.Contains(msg, want) {
					t.Errorf("shard 1's error %q lacks %q", msg, want)
				}
			}
		}
	}
}

func TestVanishedJob(t *testing.T) {
	t.Parallel()
	e, st := newExecutor(t, "", nil)
	h := &executortest.Harness{Store: st, Executor: e}
	m := executortest.NewJob(t, h, 1)
	_, err := e.Poll(context.Background(), m.JobID+";1;1000;0-2;987654321")
	if !errors.Is(err, batch.ErrVanished) || !strings.Contains(err.Error(), "no longer knows") {
		t.Fatalf("Poll of a job Slurm does not know: got %v, want ErrVanished saying so", err)
	}
}

// forget waits until the controller no longer knows Slurm job id (MinJobAge
// after its tasks end), so that only sacct does.
func forget(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		out, err := exec.Command("scontrol", "-o", "show", "job", id).CombinedOutput()
		if err != nil && strings.Contains(string(out), "Invalid job id") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller still knows job %s after 120 s: %s %v", id, out, err)
		}
		time.Sleep(time.Second)
	}
}

// A restarted server finds a job the controller forgot in sacct: each
// task's end and its attempts, the earlier one's exit code from its
// REQUEUED row.
func TestForgottenJobFromSacct(t *testing.T) {
	needAccounting(t)
	t.Parallel()
	e, st := newExecutor(t, "part-00001:1", nil)
	h := &executortest.Harness{Store: st, Executor: e}
	m := executortest.NewJob(t, h, 2)
	handle, err := e.Start(context.Background(), m, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	if p := wait(t, e, handle); p.Children[1].Attempts != 2 {
		t.Fatalf("shard 1 should have been requeued once: %+v", p.Children[1])
	}
	forget(t, handle[strings.LastIndex(handle, ";")+1:])
	again, err := slurm.New(st, &slurm.Options{LogDir: slurm.LogDir(e), PollInterval: 200 * time.Millisecond, WorkerCommand: "false", Accounting: true})
	if err != nil {
		t.Fatal(err)
	}
	p, err := again.Poll(context.Background(), handle)
	if err != nil {
		t.Fatalf("Poll of a job only sacct knows: %v", err)
	}
	if !p.Done {
		t.Fatalf("not done: %+v", p)
	}
	for _, c := range p.Children {
		wantAttempts := 1
		if c.Shard == 1 {
			wantAttempts = 2
		}
		if c.State != batch.ShardSucceeded || c.Attempts != wantAttempts || len(c.Errors) != wantAttempts-1 {
			t.Errorf("shard %d: %s after %d attempts, %d errors; want SUCCEEDED after %d", c.Shard, c.State, c.Attempts, len(c.Errors), wantAttempts)
		}
	}
	if errs := p.Children[1].Errors; len(errs) == 1 {
		for _, want := range []string{"REQUEUED after attempt 1, exit code 1", "injected fault"} {
			if !strings.Contains(errs[0].Error, want) {
				t.Errorf("shard 1's first attempt: %q lacks %q", errs[0].Error, want)
			}
		}
	}
}

// A task that failed while no server watched, and that the controller then
// forgot, cannot be requeued: a restarted server runs its shard again as a
// new Slurm job, its attempts continuing, while attempts are left; a server
// restarted again follows that job too. Without attempts left the shard
// fails, saying why.
func TestForgottenFailedTaskResubmitted(t *testing.T) {
	needAccounting(t)
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxAttempts int
		want        batch.ShardState
	}{
		{"attempts left", 2, batch.ShardSucceeded},
		{"attempts spent", 1, batch.ShardFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e, st := newExecutor(t, "part-00001:1", nil)
			h := &executortest.Harness{Store: st, Executor: e}
			m := executortest.NewJob(t, h, tc.maxAttempts)
			handle, err := e.Start(context.Background(), m, []int{0, 1, 2})
			if err != nil {
				t.Fatal(err)
			}
			// No poll: the tasks end, shard 1's failed, unseen, and are forgotten.
			forget(t, handle[strings.LastIndex(handle, ";")+1:])
			again, err := slurm.New(st, ptr(slurm.Opts(e)))
			if err != nil {
				t.Fatal(err)
			}
			first, err := again.Poll(context.Background(), handle)
			if err != nil {
				t.Fatalf("Poll after the controller forgot the job: %v", err)
			}
			// The first poll reads the failed attempt from sacct and the log.
			if errs := first.Children[1].Errors; len(errs) != 1 || !strings.Contains(errs[0].Error, "exit code 1") || !strings.Contains(errs[0].Error, "injected fault") {
				t.Errorf("shard 1: want attempt 1's exit code and error, got %+v", errs)
			}
			// A server restarted once more follows the resubmitted job.
			third, err := slurm.New(st, ptr(slurm.Opts(e)))
			if err != nil {
				t.Fatal(err)
			}
			p := wait(t, third, handle)
			for _, c := range p.Children {
				want, attempts := batch.ShardSucceeded, 1
				if c.Shard == 1 {
					want, attempts = tc.want, min(2, tc.maxAttempts)
				}
				if c.State != want || c.Attempts != attempts {
					t.Errorf("shard %d: %s after %d attempts %+v, want %s after %d", c.Shard, c.State, c.Attempts, c.Errors, want, attempts)
				}
			}
			errs := p.Children[1].Errors
			if len(errs) != 1 || errs[0].Attempt != 1 {
				t.Fatalf("shard 1: want the error of attempt 1, got %+v", errs)
			}
			if !strings.Contains(errs[0].Error, "injected fault") {
				t.Errorf("shard 1's error %q lacks the worker's", errs[0].Error)
			}
			ok, err := st.Exists(context.Background(), batch.PartKey(m.JobID, m.Shards[1].Name))
			if err != nil || ok != (tc.want == batch.ShardSucceeded) {
				t.Errorf("shard 1's part exists: %v (%v)", ok, err)
			}
			if tc.want == batch.ShardSucceeded {
				// The worker ran attempt 2: its fault spares attempts after the first.
				ae, err := child.NewStoreRecords(st).AttemptError(context.Background(), m.JobID, 1, 2)
				if err != nil || ae != nil {
					t.Errorf("attempt 2 recorded an error: %+v %v", ae, err)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// A job whose arrays Slurm forgot while no server followed them (they ended,
// and MinJobAge passed), on a server that cannot ask sacct, is reconciled
// with the store: the shards whose parts are stored have succeeded, each
// other one lost an attempt (its worker's error kept) and runs again while
// its attempts last. It used to end FAILED whatever the store held.
func TestForgottenArrayReconciled(t *testing.T) {
	needAccounting(t) // for the controller's short MinJobAge; the server reads no sacct
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults string
		shard1 int // attempts of shard 1
	}{
		{"every part stored", "", 1},
		{"a part missing", "part-00001:1", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e, st := newExecutor(t, tc.faults, nil)
			cat := dataset.NewCatalog(st)
			if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: 3, Bytes: 30 * 10000, Seconds: 10}); err != nil {
				t.Fatal(err)
			}
			opts := &batch.Options{MaxAttempts: 2, Log: slog.New(slog.DiscardHandler)}
			first := batch.NewManager(cat, analysis.Builtins(), e, opts)
			if err := first.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			m, err := first.Submit(ctx, batch.SubmitRequest{Function: "psd", Dataset: "demo",
				Params: json.RawMessage(`{"column": "samples", "fs_column": "fs", "nperseg": 256}`)})
			if err != nil {
				t.Fatal(err)
			}
			// The server stops as soon as the array is submitted: no poll sees its tasks end.
			for m.Handle == "" {
				time.Sleep(10 * time.Millisecond)
				m, _ = first.Status(m.JobID)
			}
			first.Close()
			forget(t, m.Handle[strings.LastIndex(m.Handle, ";")+1:])
			o := slurm.Opts(e)
			o.Accounting = false
			plain, err := slurm.New(st, &o)
			if err != nil {
				t.Fatal(err)
			}
			again := batch.NewManager(cat, analysis.Builtins(), plain, opts)
			if err := again.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(again.Close)
			deadline := time.Now().Add(90 * time.Second)
			for !m.State.Terminal() {
				if time.Now().After(deadline) {
					t.Fatalf("job %s still %s after 90 s", m.JobID, m.State)
				}
				time.Sleep(200 * time.Millisecond)
				if m, err = again.Status(m.JobID); err != nil {
					t.Fatal(err)
				}
			}
			if m.State != batch.StateSucceeded {
				t.Fatalf("job ended %s (%s), want SUCCEEDED", m.State, m.Error)
			}
			for i, s := range m.Shards {
				want := 1
				if i == 1 {
					want = tc.shard1
				}
				if s.State != batch.ShardSucceeded || s.Attempts != want || len(s.Errors) != want-1 {
					t.Errorf("shard %d: %s after %d attempts, errors %+v; want SUCCEEDED after %d", i, s.State, s.Attempts, s.Errors, want)
				}
			}
			if errs := m.Shards[1].Errors; len(errs) == 1 && !strings.Contains(errs[0].Error, "injected fault") {
				t.Errorf("shard 1's failed attempt: %q lacks its worker's error", errs[0].Error)
			}
		})
	}
}

// An administrator's scancel of a job's tasks behind the server's back is an
// intent to stop them: a running task cancelled so, and a pending one (which
// Slurm then drops without a record, as if it had forgotten it), fail their
// shards, saying so, and are neither requeued nor resubmitted; the job's
// other tasks run on. Both with and without sacct.
func TestScancelBehindTheServer(t *testing.T) {
	t.Parallel()
	for _, sacct := range []bool{false, true} {
		t.Run(fmt.Sprintf("sacct=%v", sacct), func(t *testing.T) {
			if sacct {
				needAccounting(t)
			}
			t.Parallel()
			ctx := context.Background()
			// One task at a time: shard 0 runs long while 1 and 2 wait.
			e0, st := newExecutor(t, "part-00000:sleep=60", &slurm.Options{MaxRunning: 1})
			o := slurm.Opts(e0)
			o.Accounting = sacct
			e, err := slurm.New(st, &o)
			if err != nil {
				t.Fatal(err)
			}
			m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 3)
			handle, err := e.Start(ctx, m, []int{0, 1, 2})
			if err != nil {
				t.Fatal(err)
			}
			id := handle[strings.LastIndex(handle, ";")+1:]
			deadline := time.Now().Add(60 * time.Second)
			for {
				p, err := e.Poll(ctx, handle)
				if err != nil {
					t.Fatal(err)
				}
				if p.Children[0].State == batch.ShardRunning {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("shard 0 not running after 60 s: %+v", p)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if out, err := exec.Command("scancel", id+"_0", id+"_2").CombinedOutput(); err != nil {
				t.Fatalf("scancel: %v: %s", err, out)
			}
			p := wait(t, e, handle)
			for _, c := range p.Children {
				want := batch.ShardFailed
				if c.Shard == 1 {
					want = batch.ShardSucceeded
				}
				if c.State != want || c.Attempts != 1 {
					t.Errorf("shard %d: %s after %d attempts %+v; want %s after 1", c.Shard, c.State, c.Attempts, c.Errors, want)
				}
				if c.Shard == 1 {
					continue
				}
				if len(c.Errors) != 1 || !strings.Contains(c.Errors[0].Error, "cancelled") || !strings.Contains(c.Errors[0].Error, "not run again") {
					t.Errorf("shard %d's error does not say it was cancelled outside flightbatch: %+v", c.Shard, c.Errors)
				}
			}
			if ok, err := st.Exists(ctx, batch.PartKey(m.JobID, m.Shards[2].Name)); ok || err != nil {
				t.Errorf("shard 2, cancelled while pending, ran all the same (part %v, %v)", ok, err)
			}
			// Nothing was submitted again for the job.
			objs, err := st.List(ctx, batch.Prefix+m.JobID+"/children/")
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if strings.Contains(o.Key, "resubmitted") {
					t.Errorf("a cancelled task was resubmitted: %s", o.Key)
				}
			}
		})
	}
}

// slurmAdmin runs scontrol as the cluster's administrator (root here, as
// the test cluster's daemons run; else through sudo -n).
func slurmAdmin(t *testing.T, args ...string) error {
	t.Helper()
	cmd := exec.Command("scontrol", args...)
	if os.Getuid() != 0 {
		cmd = exec.Command("sudo", append([]string{"-n", "env", "SLURM_CONF=" + os.Getenv("SLURM_CONF"), "scontrol"}, args...)...)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("scontrol %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// A node failure is not a decision to stop: the tasks it killed run again
// (Slurm requeues them by itself, as they are submitted with --requeue), the
// attempt counts, and the shards succeed. A restarted server that finds the
// tasks only in sacct counts that attempt too (its row says NODE_FAIL, not
// REQUEUED). Not parallel: the cluster's one node goes down (the parallel
// tests start once it has ended).
func TestNodeFailureRetried(t *testing.T) {
	e, st := newExecutor(t, "*:sleep=3", nil)
	ctx := context.Background()
	out, err := exec.Command("sinfo", "-h", "-o", "%N").Output()
	if err != nil {
		t.Fatal(err)
	}
	node := strings.TrimSpace(string(out))
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 3)
	handle, err := e.Start(ctx, m, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		p, err := e.Poll(ctx, handle)
		if err != nil {
			t.Fatal(err)
		}
		if p.Children[0].State == batch.ShardRunning && p.Children[1].State == batch.ShardRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("shards not running after 60 s: %+v", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := slurmAdmin(t, "update", "nodename="+node, "state=down", "reason=flightbatch-test"); err != nil {
		t.Fatal(err)
	}
	// The node's slurmd registers again at once, which may already return
	// it to service (ReturnToService): a resume is then refused.
	time.Sleep(time.Second)
	_ = slurmAdmin(t, "update", "nodename="+node, "state=resume")
	check := func(p batch.Progress, who string) {
		t.Helper()
		for _, c := range p.Children {
			if c.State != batch.ShardSucceeded || c.Attempts != 2 {
				t.Errorf("%s: shard %d %s after %d attempts %+v; want SUCCEEDED after 2 (the node failed in the first)", who, c.Shard, c.State, c.Attempts, c.Errors)
			}
		}
	}
	check(wait(t, e, handle), "the server that followed")
	if !accounting() {
		return
	}
	forget(t, handle[strings.LastIndex(handle, ";")+1:])
	again, err := slurm.New(st, ptr(slurm.Opts(e)))
	if err != nil {
		t.Fatal(err)
	}
	p := wait(t, again, handle)
	check(p, "a restarted server reading sacct")
	if errs := p.Children[0].Errors; len(errs) != 1 || !strings.Contains(errs[0].Error, "NODE_FAIL") {
		t.Errorf("shard 0's first attempt: %+v, want Slurm's NODE_FAIL", errs)
	}
}
