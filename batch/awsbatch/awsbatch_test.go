package awsbatch_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	sdkbatch "github.com/aws/aws-sdk-go-v2/service/batch"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/awsbatch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/batch/executortest"
	"github.com/flightbatch/flightbatch/internal/batchtest"
	"github.com/flightbatch/flightbatch/store"
)

// workerBin is a `flightbatch` binary built once for every test: the
// command of the test endpoint's job definition.
var workerBin string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "awsbatch-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	workerBin = filepath.Join(dir, "flightbatch")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "build", "-o", workerBin, "./cmd/flightbatch")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build flightbatch:", err)
		return 1
	}
	return m.Run()
}

// passEnv is what children need of this process's environment to reach an
// S3 store (a container gets it from its task role and configuration).
var passEnv = []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}

// newStore opens an empty store for one test: a fresh prefix of the S3 test
// server's bucket when FLIGHTBATCH_TEST_S3_BUCKET is set (scripts/s3-server.sh),
// else a directory. FLIGHTBATCH_REQUIRE_S3=1 makes a missing S3 server fail
// the test rather than fall back.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	url := "file://" + t.TempDir()
	if bucket := os.Getenv("FLIGHTBATCH_TEST_S3_BUCKET"); bucket != "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		url = "s3://" + bucket + "/awsbatchtest-" + hex.EncodeToString(b)
	} else if os.Getenv("FLIGHTBATCH_REQUIRE_S3") == "1" {
		t.Fatal("FLIGHTBATCH_REQUIRE_S3=1 but FLIGHTBATCH_TEST_S3_BUCKET is not set: start a server with scripts/s3-server.sh and source its env file")
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer st.Close()
		if st.URL()[:3] != "s3:" {
			return
		}
		objs, err := st.List(ctx, "")
		if err != nil {
			t.Errorf("list for cleanup: %v", err)
			return
		}
		for _, o := range objs {
			if err := st.Delete(ctx, o.Key); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return st
}

// endpoint serves a test AWS Batch endpoint whose job definition "worker"
// runs `flightbatch worker` with the given faults and the suite's functions,
// and returns a client of it.
func endpoint(t *testing.T, faults string) (*sdkbatch.Client, *batchtest.Endpoint) {
	t.Helper()
	ep, err := batchtest.New(&batchtest.Options{
		Definitions: []batchtest.JobDefinition{{
			Name:    "worker",
			Command: []string{workerBin, "worker"},
			Environment: []batchtest.KeyValuePair{
				{Name: child.EnvFaults, Value: faults},
				{Name: child.EnvFunctions, Value: executortest.FunctionsFile(t)},
			},
		}},
		MaxRunning:     4,
		PassEnv:        passEnv,
		LogDir:         t.TempDir(),
		TerminateGrace: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ep)
	t.Cleanup(func() {
		srv.Close()
		ep.Close()
	})
	client := sdkbatch.New(sdkbatch.Options{
		BaseEndpoint: aws.String(srv.URL),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("k", "s", ""),
	})
	return client, ep
}

func newExecutor(t *testing.T, client awsbatch.API, st *store.Store, opts *awsbatch.Options) *awsbatch.Executor {
	t.Helper()
	if opts == nil {
		opts = &awsbatch.Options{}
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = 100 * time.Millisecond
	}
	e, err := awsbatch.New(client, st, "queue-1", "worker", opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestConformance(t *testing.T) {
	executortest.RunConformanceTests(t, func(t *testing.T, faults string) *executortest.Harness {
		st := newStore(t)
		client, _ := endpoint(t, faults)
		return &executortest.Harness{Store: st, Executor: newExecutor(t, client, st, nil)}
	})
}

// TestPollChangesAcrossRestart: PollChanges reports every child at its
// first call for a handle, also from an executor made afresh after a
// restart, then only what changed.
func TestPollChangesAcrossRestart(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "")
	h := &executortest.Harness{Store: st, Executor: newExecutor(t, client, st, nil)}
	executortest.ChangesAcrossRestart(t, h, func() batch.Executor { return newExecutor(t, client, st, nil) })
}

// waitDone polls handle until its children are done.
func waitDone(t *testing.T, e batch.Executor, handle string) batch.Progress {
	t.Helper()
	deadline := time.Now().Add(executortest.Timeout)
	for {
		p, err := e.Poll(context.Background(), handle)
		if err != nil {
			t.Fatalf("Poll(%s): %v", handle, err)
		}
		if p.Done {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of %s not done after %v: %+v", handle, executortest.Timeout, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func parts(t *testing.T, st *store.Store, m *batch.Manifest) []int {
	t.Helper()
	var out []int
	for i, s := range m.Shards {
		ok, err := st.Exists(context.Background(), batch.PartKey(m.JobID, s.Name))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			out = append(out, i)
		}
	}
	return out
}

// A restarted server has a new executor, which must follow the AWS Batch
// job from its handle alone, with the shards it was started with.
func TestRestartFindsJob(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "")
	first := newExecutor(t, client, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: first}, 1)
	handle, err := first.Start(context.Background(), m, []int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	second := newExecutor(t, client, st, nil)
	p := waitDone(t, second, handle)
	var shards []int
	for _, c := range p.Children {
		shards = append(shards, c.Shard)
		if c.State != batch.ShardSucceeded || c.Attempts != 1 {
			t.Errorf("shard %d: %s after %d attempts, want SUCCEEDED after 1", c.Shard, c.State, c.Attempts)
		}
	}
	if !slices.Equal(shards, []int{0, 2}) {
		t.Errorf("children for shards %v, want [0 2]", shards)
	}
	if got := parts(t, st, m); !slices.Equal(got, []int{0, 2}) {
		t.Errorf("parts of shards %v, want [0 2]", got)
	}
}

// More shards than an array job may have children: each child runs several,
// and a child retried after one of its shards failed runs only that one again.
func TestGroupedChildren(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "part-00002:1")
	e := newExecutor(t, client, st, &awsbatch.Options{MaxChildren: 2, Timeout: 2 * time.Minute, ShareIdentifier: "lab-a", SchedulingPriority: aws.Int32(7)})
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 3)
	handle, err := e.Start(context.Background(), m, []int{0, 1, 2})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.DescribeJobs(context.Background(), &sdkbatch.DescribeJobsInput{Jobs: []string{handle}})
	if err != nil || len(out.Jobs) != 1 {
		t.Fatalf("DescribeJobs: %v, %d jobs", err, len(out.Jobs))
	}
	d := out.Jobs[0]
	if d.ArrayProperties == nil || aws.ToInt32(d.ArrayProperties.Size) != 2 {
		t.Errorf("array properties %+v, want size 2", d.ArrayProperties)
	}
	if d.RetryStrategy == nil || aws.ToInt32(d.RetryStrategy.Attempts) != 3 {
		t.Errorf("retry strategy %+v, want 3 attempts", d.RetryStrategy)
	}
	if d.Timeout == nil || aws.ToInt32(d.Timeout.AttemptDurationSeconds) != 240 {
		t.Errorf("timeout %+v, want 240 s (two shards of 120 s for child 0)", d.Timeout)
	}
	if aws.ToString(d.ShareIdentifier) != "lab-a" || aws.ToInt32(d.SchedulingPriority) != 7 {
		t.Errorf("share identifier %v, scheduling priority %v, want lab-a and 7", aws.ToString(d.ShareIdentifier), aws.ToInt32(d.SchedulingPriority))
	}
	if d.Tags[awsbatch.TagJobID] != m.JobID || d.Tags[awsbatch.TagDataset] != m.Dataset {
		t.Errorf("tags %v, want the job ID and dataset", d.Tags)
	}
	p := waitDone(t, e, handle)
	for _, c := range p.Children {
		want := 1
		if c.Shard == 2 || c.Shard == 0 { // child 0 runs shards 0 and 2
			want = 2
		}
		if c.State != batch.ShardSucceeded || c.Attempts != want {
			t.Errorf("shard %d: %s after %d attempts, want SUCCEEDED after %d", c.Shard, c.State, c.Attempts, want)
		}
	}
	if c := p.Children[2]; len(c.Errors) != 1 || c.Errors[0].Attempt != 1 {
		t.Errorf("shard 2: errors %+v, want the first attempt's", c.Errors)
	}
	if c := p.Children[0]; len(c.Errors) != 0 {
		t.Errorf("shard 0 succeeded in its child's first attempt but has errors %+v", c.Errors)
	}
	if got := parts(t, st, m); !slices.Equal(got, []int{0, 1, 2}) {
		t.Errorf("parts of shards %v, want all three", got)
	}
}

// A single shard is a plain job, not an array job of one.
func TestSingleShardPlainJob(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "")
	e := newExecutor(t, client, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.DescribeJobs(context.Background(), &sdkbatch.DescribeJobsInput{Jobs: []string{handle}})
	if err != nil || len(out.Jobs) != 1 {
		t.Fatalf("DescribeJobs: %v", err)
	}
	if out.Jobs[0].ArrayProperties != nil {
		t.Errorf("a single shard was submitted as an array job: %+v", out.Jobs[0].ArrayProperties)
	}
	p := waitDone(t, newExecutor(t, client, st, nil), handle) // found again from its handle
	if len(p.Children) != 1 || p.Children[0].Shard != 1 || p.Children[0].State != batch.ShardSucceeded {
		t.Fatalf("want shard 1 SUCCEEDED, got %+v", p.Children)
	}
}

// A job the AWS Batch endpoint forgot (it restarted) has vanished.
func TestVanished(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "*:sleep=60")
	e := newExecutor(t, client, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := endpoint(t, "")
	_, err = newExecutor(t, other, st, nil).Poll(context.Background(), handle)
	if !errors.Is(err, batch.ErrVanished) {
		t.Fatalf("Poll on an endpoint that never saw the job: %v, want ErrVanished", err)
	}
}

func TestNewRefuses(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "")
	for name, f := range map[string]func() error{
		"no queue":      func() error { _, err := awsbatch.New(client, st, "", "d", nil); return err },
		"no definition": func() error { _, err := awsbatch.New(client, st, "q", "", nil); return err },
		"short timeout": func() error {
			_, err := awsbatch.New(client, st, "q", "d", &awsbatch.Options{Timeout: 10 * time.Second})
			return err
		},
		"priority out of range": func() error {
			_, err := awsbatch.New(client, st, "q", "d", &awsbatch.Options{SchedulingPriority: aws.Int32(10000)})
			return err
		},
		"one child": func() error {
			_, err := awsbatch.New(client, st, "q", "d", &awsbatch.Options{MaxChildren: 1})
			return err
		},
	} {
		if f() == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// A shard list too long for the environment goes to the store; children and
// a restarted executor read it there.
func TestShardListInStore(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "")
	e := newExecutor(t, client, st, &awsbatch.Options{MaxInlineShards: 2})
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 2})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.DescribeJobs(context.Background(), &sdkbatch.DescribeJobsInput{Jobs: []string{handle + ":0"}})
	if err != nil || len(out.Jobs) != 1 {
		t.Fatalf("DescribeJobs: %v", err)
	}
	var list string
	for _, kv := range out.Jobs[0].Container.Environment {
		if aws.ToString(kv.Name) == child.EnvShards {
			list = aws.ToString(kv.Value)
		}
	}
	if !strings.HasPrefix(list, "@") {
		t.Fatalf("%s=%q, want @KEY", child.EnvShards, list)
	}
	p := waitDone(t, newExecutor(t, client, st, nil), handle)
	if len(p.Children) != 2 || p.Children[0].Shard != 0 || p.Children[1].Shard != 2 {
		t.Fatalf("want children of shards 0 and 2, got %+v", p.Children)
	}
	for _, c := range p.Children {
		if c.State != batch.ShardSucceeded {
			t.Errorf("shard %d: %s", c.Shard, c.State)
		}
	}
}

// Starting no shard (every part exists already) submits nothing and is done.
func TestStartNothing(t *testing.T) {
	st := newStore(t)
	client, _ := endpoint(t, "")
	e := newExecutor(t, client, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := waitDone(t, e, handle)
	if len(p.Children) != 0 {
		t.Errorf("children %+v, want none", p.Children)
	}
	if err := e.Cancel(context.Background(), handle); err != nil {
		t.Errorf("Cancel: %v", err)
	}
}

// pollUntil polls handle until ok accepts its progress, failing after within.
func pollUntil(t *testing.T, e batch.Executor, handle string, within time.Duration, ok func(batch.Progress) bool) batch.Progress {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		p, err := e.Poll(context.Background(), handle)
		if err != nil {
			t.Fatalf("Poll(%s): %v", handle, err)
		}
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not there after %v: %+v", handle, within, p)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Right after SubmitJob, DescribeJobs may not know the job yet: the executor
// waits, it does not call the job vanished.
func TestVisibilityGrace(t *testing.T) {
	st := newStore(t)
	client, ep := endpoint(t, "")
	ep.SetBehaviours(batchtest.Behaviours{VisibilityDelay: 2 * time.Second})
	e := newExecutor(t, client, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Poll(context.Background(), handle)
	if err != nil || p.Done {
		t.Fatalf("Poll of a job not yet visible: %v, done %v; want waiting children", err, p.Done)
	}
	for _, c := range waitDone(t, e, handle).Children {
		if c.State != batch.ShardSucceeded {
			t.Errorf("shard %d: %s", c.Shard, c.State)
		}
	}
	// Once seen, a job AWS Batch no longer knows has vanished, grace or not.
	ep.SetBehaviours(batchtest.Behaviours{VisibilityDelay: time.Hour})
	if _, err := e.Poll(context.Background(), handle); !errors.Is(err, batch.ErrVanished) {
		t.Errorf("Poll of a job seen before and now unknown: %v, want ErrVanished", err)
	}
}

// A TerminateJob throttled beyond the SDK's retries is sent again until AWS
// Batch takes it: the children stop.
func TestCancelThrottled(t *testing.T) {
	st := newStore(t)
	client, ep := endpoint(t, "*:sleep=60")
	noRetry := sdkbatch.New(client.Options(), func(o *sdkbatch.Options) { o.RetryMaxAttempts = 1 })
	e := newExecutor(t, noRetry, st, nil)
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, e, handle, executortest.Timeout, func(p batch.Progress) bool {
		return len(p.Children) == 2 && p.Children[0].State == batch.ShardRunning && p.Children[1].State == batch.ShardRunning
	})
	ep.SetBehaviours(batchtest.Behaviours{Throttle: map[string]int{"TerminateJob": 3}})
	if err := e.Cancel(context.Background(), handle); err == nil {
		t.Error("Cancel succeeded through a throttled TerminateJob")
	}
	// The children sleep a minute: done well before means they were stopped.
	p := pollUntil(t, e, handle, 30*time.Second, func(p batch.Progress) bool { return p.Done })
	for _, c := range p.Children {
		if c.State != batch.ShardCancelled {
			t.Errorf("shard %d: %s, want CANCELLED", c.Shard, c.State)
		}
	}
}

// An array parent's status summary can trail its children: the executor
// looks at the children anyway once the summary has not moved for a while.
func TestSummaryLag(t *testing.T) {
	st := newStore(t)
	client, ep := endpoint(t, "part-00001:sleep=60")
	ep.SetBehaviours(batchtest.Behaviours{SummaryLag: time.Hour})
	e := newExecutor(t, client, st, &awsbatch.Options{SummaryStale: 300 * time.Millisecond})
	m := executortest.NewJob(t, &executortest.Harness{Store: st, Executor: e}, 1)
	handle, err := e.Start(context.Background(), m, []int{0, 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Cancel(context.Background(), handle) })
	// Shard 1's child sleeps a minute, so the parent does not end before.
	pollUntil(t, e, handle, 30*time.Second, func(p batch.Progress) bool {
		return len(p.Children) == 2 && p.Children[0].State == batch.ShardSucceeded && p.Children[1].State == batch.ShardRunning
	})
}
