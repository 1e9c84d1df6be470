package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/store"
)

func TestParseShowJob(t *testing.T) {
	tests := []struct {
		name string
		out  string
		n    int
		want []task
	}{
		{"pending folded", "JobId=7 ArrayJobId=7 ArrayTaskId=1-3%2 JobName=x JobState=PENDING Reason=None Restarts=0 ExitCode=0:0\n", 4,
			[]task{{1, "PENDING", "None", 0, 0, 0, false, nil}, {2, "PENDING", "None", 0, 0, 0, false, nil}, {3, "PENDING", "None", 0, 0, 0, false, nil}}},
		{"tasks", "JobId=9 ArrayJobId=7 ArrayTaskId=0 JobState=FAILED Reason=NonZeroExitCode Restarts=1 ExitCode=7:0\n" +
			"JobId=10 ArrayJobId=7 ArrayTaskId=4 JobState=CANCELLED Reason=None Restarts=0 ExitCode=0:15\n", 5,
			[]task{{0, "FAILED", "NonZeroExitCode", 1, 7, 0, false, nil}, {4, "CANCELLED", "None", 0, 0, 15, false, nil}}},
		{"set", "JobId=7 ArrayJobId=7 ArrayTaskId=0,2-3 JobState=PENDING Restarts=0 ExitCode=0:0\n", 3,
			[]task{{0, "PENDING", "", 0, 0, 0, false, nil}, {2, "PENDING", "", 0, 0, 0, false, nil}}},
		{"plain job", "JobId=12 JobName=flightbatch-x JobState=RUNNING Reason=None Restarts=2 ExitCode=0:0 WorkDir=/a b\n", 1,
			[]task{{0, "RUNNING", "None", 2, 0, 0, false, nil}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseShowJob([]byte(tc.out), tc.n)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"JobState=RUNNING\n", "JobId=1 ArrayTaskId=x JobState=PENDING\n", "JobId=1 ArrayTaskId=3-1 JobState=PENDING\n"} {
		if _, err := parseShowJob([]byte(bad), 4); err == nil {
			t.Errorf("parseShowJob(%q): want an error", bad)
		}
	}
}

func TestParseSacct(t *testing.T) {
	tests := []struct {
		name string
		out  string
		n    int
		want []task
	}{
		{"one row a task", "5_0|COMPLETED|0:0\n5_1|FAILED|7:0\n5_[2-3]|PENDING|0:0\n5_4|CANCELLED by 0|0:15\n", 5,
			[]task{{0, "COMPLETED", "", 0, 0, 0, false, nil}, {1, "FAILED", "", 0, 7, 0, false, nil}, {2, "PENDING", "", 0, 0, 0, false, nil},
				{3, "PENDING", "", 0, 0, 0, false, nil}, {4, "CANCELLED", "", 0, 0, 15, false, nil}}},
		// --duplicates: a task's REQUEUED rows are its earlier attempts, in
		// whatever order they come with the others.
		{"requeued", "8_1|COMPLETED|0:0\n8_0|REQUEUED|1:0\n8_0|REQUEUED|0:9\n8_0|FAILED|3:0\n8_1|REQUEUED|1:0\n", 2,
			[]task{{0, "FAILED", "", 2, 3, 0, false, []task{{0, "REQUEUED", "", 0, 1, 0, false, nil}, {0, "REQUEUED", "", 0, 0, 9, false, nil}}},
				{1, "COMPLETED", "", 1, 0, 0, false, []task{{1, "REQUEUED", "", 0, 1, 0, false, nil}}}}},
		{"requeued, not yet pending again", "9|REQUEUED|1:0\n", 1,
			[]task{{0, "REQUEUED", "", 1, 0, 0, false, []task{{0, "REQUEUED", "", 0, 1, 0, false, nil}}}}},
		// Slurm requeues a task whose node failed by itself: that attempt's
		// row keeps NODE_FAIL.
		{"requeued by Slurm", "7_0|NODE_FAIL|0:0\n7_1|COMPLETED|0:0\n7_0|COMPLETED|0:0\n", 2,
			[]task{{0, "COMPLETED", "", 1, 0, 0, false, []task{{0, "NODE_FAIL", "", 0, 0, 0, false, nil}}},
				{1, "COMPLETED", "", 0, 0, 0, false, nil}}},
		// A folded set of pending tasks is older than a task's own row.
		{"stale pending set", "1_0|COMPLETED|0:0\n1_1|CANCELLED by 0|0:0\n1_[1,3%1]|PENDING|0:0\n", 4,
			[]task{{0, "COMPLETED", "", 0, 0, 0, false, nil}, {1, "CANCELLED", "", 0, 0, 0, false, nil}, {3, "PENDING", "", 0, 0, 0, false, nil}}},
		{"outside the array, and junk", "5_9|FAILED|1:0\nnonsense\n5_x|FAILED|1:0\n", 3, []task{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseSacct([]byte(tc.out), tc.n); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseMaxArraySize(t *testing.T) {
	n, err := parseMaxArraySize([]byte("MailProg = /bin/mail\nMaxArraySize            = 1001\nMaxJobCount = 10000\n"))
	if err != nil || n != 1001 {
		t.Fatalf("got %d, %v; want 1001", n, err)
	}
	if _, err := parseMaxArraySize([]byte("MaxJobCount = 10000\n")); err == nil {
		t.Fatal("want an error without MaxArraySize")
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range []string{"plain", "", "a b", "it's", "$HOME", "s3://b/p?x=1&y", "a\nb"} {
		out, err := exec.Command("sh", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("shellQuote(%q) = %s gives %q, %v", s, shellQuote(s), out, err)
		}
	}
}

// fake is a cluster of one array, answering as scontrol does.
type fake struct {
	calls  []string
	stdin  []byte
	show   string // scontrol -o show job's answer
	showOK bool
	sacct  string // sacct's answer
	// ids are the answers of the next sbatches (then 42); shows answer
	// scontrol about other jobs than the array.
	ids   []string
	shows map[string]string
}

func (f *fake) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	call := name + " " + strings.Join(args, " ")
	f.calls = append(f.calls, call)
	switch {
	case name == "sbatch":
		f.stdin = stdin
		id := "42"
		if len(f.ids) > 0 {
			id, f.ids = f.ids[0], f.ids[1:]
		}
		return []byte(id + ";cluster\n"), nil
	case name == "scontrol" && args[0] == "show":
		return []byte("MaxArraySize = 3\n"), nil
	case name == "scontrol" && args[0] == "-o":
		if out, ok := f.shows[args[len(args)-1]]; ok {
			return []byte(out), nil
		}
		if !f.showOK {
			return nil, errors.New("scontrol: exit status 1: slurm_load_jobs error: Invalid job id specified")
		}
		return []byte(f.show), nil
	case name == "sacct":
		return []byte(f.sacct), nil
	}
	return nil, nil
}

func newFake(t *testing.T, f *fake, opts Options) (*Executor, *batch.Manifest) {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(context.Background(), "file://"+dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	opts.Runner = f
	opts.WorkerCommand = "flightbatch worker"
	e, err := New(st, &opts)
	if err != nil {
		t.Fatal(err)
	}
	m := &batch.Manifest{JobID: batch.NewJobID(time.Now()), Function: "psd", Dataset: "demo", MaxAttempts: 2, State: batch.StateRunning}
	for i := range 4 {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("part-%05d", i), State: batch.ShardPending})
	}
	if err := batch.SaveManifest(context.Background(), st, m); err != nil {
		t.Fatal(err)
	}
	return e, m
}

func TestSubmit(t *testing.T) {
	f := &fake{}
	e, m := newFake(t, f, Options{Partition: "short", Account: "lab", QOS: "low", TimeLimit: "10:00", CPUsPerChild: 2, MemPerChild: "4G",
		MaxRunning: 5, ExtraArgs: []string{"--constraint=x"}, WorkerEnv: []string{"A=it's"}})
	handle, err := e.Start(context.Background(), m, []int{0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	// MaxArraySize 3: two arrays, of 3 and 1 tasks.
	var sbatch []string
	for _, c := range f.calls {
		if strings.HasPrefix(c, "sbatch ") {
			sbatch = append(sbatch, c)
		}
	}
	if len(sbatch) != 2 {
		t.Fatalf("want 2 sbatch calls, got %q", f.calls)
	}
	for _, want := range []string{"--array=0-2%5", "--requeue", "--open-mode=append", "--partition=short", "--account=lab", "--qos=low",
		"--time=10:00", "--cpus-per-task=2", "--mem=4G", "--constraint=x", "--job-name=flightbatch-" + m.JobID, "%A_%a.log"} {
		if !strings.Contains(sbatch[0], want) {
			t.Errorf("first sbatch %q lacks %q", sbatch[0], want)
		}
	}
	if strings.Contains(sbatch[1], "--array") || !strings.Contains(sbatch[1], "%j.log") {
		t.Errorf("a single shard is a plain job: %q", sbatch[1])
	}
	for _, want := range []string{"export FLIGHTBATCH_SHARDS=3\n", "export FLIGHTBATCH_JOB_ID=" + m.JobID, "export FLIGHTBATCH_EXECUTOR=slurm\n", "export A='it'\\''s'", "\nflightbatch worker\n"} {
		if !strings.Contains(string(f.stdin), want) {
			t.Errorf("script lacks %q:\n%s", want, f.stdin)
		}
	}
	if want := m.JobID + ";2;3;0-3;42,42"; handle != want {
		t.Errorf("handle %q, want %q", handle, want)
	}
}

// A failed task is requeued while attempts are left, and its error keeps
// the exit code and the log's tail.
func TestRequeue(t *testing.T) {
	f := &fake{showOK: true}
	e, m := newFake(t, f, Options{MaxArraySize: 10})
	handle, err := e.Start(context.Background(), m, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	logDir := filepath.Join(e.opts.LogDir, m.JobID)
	if err := os.WriteFile(filepath.Join(logDir, "42_1.log"), []byte("start\nlevel=WARN msg=\"child failed\" err=boom\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.show = "JobId=42 ArrayJobId=42 ArrayTaskId=0 JobState=COMPLETED Restarts=0 ExitCode=0:0\n" +
		"JobId=43 ArrayJobId=42 ArrayTaskId=1 JobState=FAILED Reason=NonZeroExitCode Restarts=0 ExitCode=1:0\n"
	p, err := e.Poll(context.Background(), handle)
	if err != nil {
		t.Fatal(err)
	}
	if p.Done || p.Children[1].State != batch.ShardPending || len(p.Children[1].Errors) != 1 {
		t.Fatalf("want shard 1 requeued with one error, got %+v", p)
	}
	if got := f.calls[len(f.calls)-1]; got != "scontrol requeue 42_1" {
		t.Errorf("last call %q, want the requeue", got)
	}
	msg := p.Children[1].Errors[0].Error
	for _, want := range []string{"42_1 FAILED", "exit code 1", "err=boom"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	// The second attempt fails too: no attempt left.
	f.show = strings.Replace(f.show, "Restarts=0 ExitCode=1:0", "Restarts=1 ExitCode=2:0", 1)
	if p, err = e.Poll(context.Background(), handle); err != nil {
		t.Fatal(err)
	}
	c := p.Children[1]
	if !p.Done || c.State != batch.ShardFailed || c.Attempts != 2 || len(c.Errors) != 2 || !strings.Contains(c.Errors[1].Error, "exit code 2") {
		t.Fatalf("want shard 1 failed after 2 attempts with 2 errors, got %+v", p)
	}
	// A server restart: a new executor finds the job from its handle alone,
	// and the errors of both attempts again (the first from the log's name,
	// as no worker recorded one here).
	again, err := New(e.st, &Options{Runner: f, WorkerCommand: "x", LogDir: e.opts.LogDir})
	if err != nil {
		t.Fatal(err)
	}
	if p, err = again.Poll(context.Background(), handle); err != nil || !p.Done {
		t.Fatalf("re-attach: %+v, %v", p, err)
	}
	if c := p.Children[1]; c.State != batch.ShardFailed || len(c.Errors) != 2 || c.Errors[0].Attempt != 1 || !strings.Contains(c.Errors[0].Error, "42_1.log") {
		t.Errorf("re-attached shard 1: %+v", c)
	}
	f.showOK = false
	if _, err := again.Poll(context.Background(), m.JobID+";2;10;0-1;77"); !errors.Is(err, batch.ErrVanished) {
		t.Errorf("a job Slurm forgot: got %v, want ErrVanished", err)
	}
	for _, bad := range []string{"no-such-handle", m.JobID + ";1;x;0;1", m.JobID + ";1;1;0-3;1", m.JobID + ";1;1;0;1;2", m.JobID + ";0;1;0;1",
		m.JobID + ";1;1;0-99999999999;1", m.JobID + ";1;1;@jobs/other/children/x.txt;1"} {
		if _, err := again.Poll(context.Background(), bad); !errors.Is(err, batch.ErrVanished) {
			t.Errorf("Poll(%q): got %v, want ErrVanished", bad, err)
		}
	}
}

// Tasks the controller forgot (MinJobAge) are read from sacct with
// accounting, from their parts without it; a forgotten failure with attempts
// left runs again as a new Slurm job, which a restarted server follows.
func TestForgottenTasks(t *testing.T) {
	show := "JobId=45 ArrayJobId=42 ArrayTaskId=2 JobState=RUNNING Reason=None Restarts=0 ExitCode=0:0\n"
	f := &fake{showOK: true}
	e, m := newFake(t, f, Options{MaxArraySize: 10})
	handle, err := e.Start(context.Background(), m, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	f.show = show
	f.sacct = "42_0|REQUEUED|1:0\n42_1|FAILED|1:0\n42_0|COMPLETED|0:0\n42_2|RUNNING|0:0\n"
	f.ids = []string{"50"}
	f.shows = map[string]string{"50": "JobId=50 JobName=x JobState=PENDING Reason=BeginTime Restarts=0 ExitCode=0:0\n"}
	// A restarted server, with accounting.
	acct, err := New(e.st, &Options{Runner: f, WorkerCommand: "x", LogDir: e.opts.LogDir, Accounting: true})
	if err != nil {
		t.Fatal(err)
	}
	f.calls = nil
	p, err := acct.Poll(context.Background(), handle)
	if err != nil {
		t.Fatal(err)
	}
	if p.Done {
		t.Errorf("shard 2 runs: not done")
	}
	c0, c1, c2 := p.Children[0], p.Children[1], p.Children[2]
	if c0.State != batch.ShardSucceeded || c0.Attempts != 2 || len(c0.Errors) != 1 || !strings.Contains(c0.Errors[0].Error, "REQUEUED after attempt 1, exit code 1") {
		t.Errorf("shard 0, requeued once then done: %+v", c0)
	}
	if c1.State != batch.ShardPending || c1.Attempts != 1 || len(c1.Errors) != 1 || !strings.Contains(c1.Errors[0].Error, "exit code 1") {
		t.Errorf("shard 1, failed and forgotten, resubmitted: %+v", c1)
	}
	if c2.State != batch.ShardRunning {
		t.Errorf("shard 2: %+v", c2)
	}
	var sbatch string
	for _, c := range f.calls {
		if strings.HasPrefix(c, "scontrol requeue") {
			t.Errorf("a forgotten task was requeued: %q", c)
		}
		if strings.HasPrefix(c, "sbatch") {
			sbatch = c
		}
	}
	if !strings.Contains(sbatch, "--begin=now+") || strings.Contains(sbatch, "--array") {
		t.Errorf("resubmission %q: want a plain job with a begin time", sbatch)
	}
	for _, want := range []string{"FLIGHTBATCH_SHARDS=1\n", "FLIGHTBATCH_ATTEMPTS_BEFORE=1\n"} {
		if !strings.Contains(string(f.stdin), want) {
			t.Errorf("the resubmission's script lacks %q:\n%s", want, f.stdin)
		}
	}

	// Restarted again: the server follows the new job, whose first run is
	// the shard's attempt 2; cancel reaches it too.
	f.shows = map[string]string{"50": "JobId=50 JobName=x JobState=COMPLETED Reason=None Restarts=0 ExitCode=0:0\n"}
	f.show = "JobId=45 ArrayJobId=42 ArrayTaskId=2 JobState=COMPLETED Reason=None Restarts=0 ExitCode=0:0\n"
	again, err := New(e.st, &Options{Runner: f, WorkerCommand: "x", LogDir: e.opts.LogDir, Accounting: true})
	if err != nil {
		t.Fatal(err)
	}
	f.calls = nil
	if p, err = again.Poll(context.Background(), handle); err != nil || !p.Done {
		t.Fatalf("re-attach after a resubmission: %+v, %v", p, err)
	}
	if c1 := p.Children[1]; c1.State != batch.ShardSucceeded || c1.Attempts != 2 || len(c1.Errors) != 1 || c1.Errors[0].Attempt != 1 || !strings.Contains(c1.Errors[0].Error, "42_1.log") {
		t.Errorf("shard 1 after its resubmission: %+v", c1)
	}
	if err := again.Cancel(context.Background(), handle); err != nil {
		t.Fatal(err)
	}
	if got := f.calls[len(f.calls)-1]; got != "scancel 42 50" {
		t.Errorf("cancel ran %q, want both Slurm jobs cancelled", got)
	}

	// Without accounting: shard 0's part says it succeeded; shard 1 has
	// none and attempts left (resubmitted), shard 3 none and its second
	// attempt's error recorded by the worker (none left: it fails).
	f2 := &fake{showOK: true, show: "JobId=45 ArrayJobId=60 ArrayTaskId=2 JobState=RUNNING Reason=None Restarts=0 ExitCode=0:0\n", ids: []string{"60", "61"},
		shows: map[string]string{"61": "JobId=61 JobName=x JobState=PENDING Reason=BeginTime Restarts=0 ExitCode=0:0\n"}}
	recs := &fakeRecords{parts: map[int]bool{0: true}, errs: map[[2]int]bool{{3, 2}: true}}
	plain, m2 := newFake(t, f2, Options{MaxArraySize: 10, Records: recs})
	handle2, err := plain.Start(context.Background(), m2, []int{0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	// Shard 1's task ran (a task cancelled while pending leaves no log).
	if err := os.WriteFile(filepath.Join(plain.opts.LogDir, m2.JobID, "60_1.log"), []byte("ran\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err = plain.Poll(context.Background(), handle2); err != nil {
		t.Fatal(err)
	}
	c0, c1, c3 := p.Children[0], p.Children[1], p.Children[3]
	if c0.State != batch.ShardSucceeded {
		t.Errorf("shard 0 has its part: %+v", c0)
	}
	if c1.State != batch.ShardPending || c1.Attempts != 1 || len(c1.Errors) != 1 || !strings.Contains(c1.Errors[0].Error, "--slurm-sacct") {
		t.Errorf("shard 1 without part nor accounting, resubmitted: %+v", c1)
	}
	if c3.State != batch.ShardFailed || c3.Attempts != 2 || len(c3.Errors) != 1 || c3.Errors[0].Attempt != 2 {
		t.Errorf("shard 3 without part, attempts spent: %+v", c3)
	}
	if n := strings.Count(strings.Join(f2.calls, "\n"), "sbatch"); n != 2 {
		t.Errorf("want the start and one resubmission, got %d sbatches: %q", n, f2.calls)
	}
}

// fakeRecords are the parts and recorded attempt errors ({shard, attempt})
// of one job.
type fakeRecords struct {
	parts map[int]bool
	errs  map[[2]int]bool
}

func (r *fakeRecords) AttemptError(_ context.Context, _ string, shard, attempt int) (*batch.AttemptError, error) {
	if r.errs[[2]int{shard, attempt}] {
		return &batch.AttemptError{Attempt: attempt, Error: "boom"}, nil
	}
	return nil, nil
}

func (r *fakeRecords) HasPart(_ context.Context, _ string, shard int) (bool, error) {
	return r.parts[shard], nil
}

func TestNewRejects(t *testing.T) {
	st, err := store.Open(context.Background(), "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, o := range []Options{{WorkerEnv: []string{"NOEQUALS"}}, {WorkerEnv: []string{"1X=2"}}, {CPUsPerChild: -1}} {
		if _, err := New(st, &o); err == nil {
			t.Errorf("New(%+v): want an error", o)
		}
	}
}
