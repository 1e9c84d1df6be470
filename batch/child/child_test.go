package child_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/store"
)

func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestReadEnv(t *testing.T) {
	aws, slurm := child.AWSBatch(), child.Slurm()
	for _, tc := range []struct {
		name                     string
		vars                     map[string]string
		index, children, attempt int
		bad                      bool
	}{
		{"no executor", map[string]string{child.EnvJobID: "j"}, 0, 1, 1, false},
		{"aws first attempt", map[string]string{aws.Marker: "x", aws.Index: "4", aws.Size: "10", aws.Attempt: "1"}, 4, 10, 1, false},
		{"aws third attempt", map[string]string{aws.Marker: "x", aws.Attempt: "3"}, 0, 1, 3, false},
		{"slurm first run", map[string]string{slurm.Marker: "7", slurm.Index: "2", slurm.Size: "5"}, 2, 5, 1, false},
		{"slurm requeued twice", map[string]string{slurm.Marker: "7", slurm.Index: "2", slurm.Size: "5", slurm.Attempt: "2"}, 2, 5, 3, false},
		{"slurm resubmitted after 2 attempts", map[string]string{slurm.Marker: "8", child.EnvAttemptsBefore: "2"}, 0, 1, 3, false},
		{"slurm resubmitted, then requeued", map[string]string{slurm.Marker: "8", child.EnvAttemptsBefore: "2", slurm.Attempt: "1"}, 0, 1, 4, false},
		{"attempts before, no executor", map[string]string{child.EnvAttemptsBefore: "1"}, 0, 1, 2, false},
		{"attempts before not a number", map[string]string{slurm.Marker: "8", child.EnvAttemptsBefore: "x"}, 0, 0, 0, true},
		{"named executor wins", map[string]string{child.EnvExecutor: "slurm", aws.Marker: "x", aws.Index: "9", slurm.Index: "1"}, 1, 1, 1, false},
		{"children set by the executor", map[string]string{child.EnvExecutor: "slurm", slurm.Index: "1", slurm.Size: "99", child.EnvChildren: "3"}, 1, 3, 1, false},
		{"unknown executor", map[string]string{child.EnvExecutor: "pbs"}, 0, 0, 0, true},
		{"index not a number", map[string]string{aws.Marker: "x", aws.Index: "one"}, 0, 0, 0, true},
		{"negative index", map[string]string{aws.Marker: "x", aws.Index: "-1"}, 0, 0, 0, true},
		{"attempt 0 on aws", map[string]string{aws.Marker: "x", aws.Attempt: "0"}, 0, 0, 0, true},
		{"size 0", map[string]string{aws.Marker: "x", aws.Size: "0"}, 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, err := child.ReadEnv(getenv(tc.vars))
			if tc.bad {
				if err == nil || !errors.Is(err, child.ErrContract) || child.ExitCode(err) != child.ExitPermanent {
					t.Fatalf("ReadEnv accepted %v (err %v)", tc.vars, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if env.Index != tc.index || env.Children != tc.children || env.Attempt != tc.attempt {
				t.Errorf("index %d of %d, attempt %d; want %d of %d, attempt %d", env.Index, env.Children, env.Attempt, tc.index, tc.children, tc.attempt)
			}
		})
	}
}

// The variables an executor sets are the ones a child reads.
func TestVarsRoundTrip(t *testing.T) {
	for _, conv := range child.Conventions() {
		vars := map[string]string{}
		for _, v := range child.Vars(conv.Executor, "job-1", "file:///s", "0-3") {
			vars[v.Name] = v.Value
		}
		vars[conv.Index] = "1"
		vars[conv.Attempt] = fmt.Sprint(conv.FirstAttempt + 1)
		env, err := child.ReadEnv(getenv(vars))
		if err != nil {
			t.Fatal(err)
		}
		if env.JobID != "job-1" || env.Store != "file:///s" || env.Shards != "0-3" || env.Index != 1 || env.Attempt != 2 {
			t.Errorf("%s: read %+v", conv.Executor, env)
		}
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, child.ExitOK},
		{errors.New("disk full"), child.ExitFailed},
		{fmt.Errorf("job x: %w", batch.ErrNotFound), child.ExitPermanent},
		{fmt.Errorf("list: %w", child.ErrContract), child.ExitPermanent},
		{errors.Join(errors.New("a"), fmt.Errorf("b: %w", batch.ErrNotFound)), child.ExitPermanent},
	} {
		if got := child.ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestEncodeList(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	shards := []int{0, 2, 4, 6, 8, 10}
	inline, err := child.EncodeList(ctx, st, "job-1", shards, 100)
	if err != nil || inline != "0,2,4,6,8,10" {
		t.Fatalf("inline list %q, %v", inline, err)
	}
	keyed, err := child.EncodeList(ctx, st, "job-1", shards, 5)
	if err != nil || !strings.HasPrefix(keyed, "@"+batch.Prefix+"job-1/") {
		t.Fatalf("long list %q, %v: want @KEY under the job", keyed, err)
	}
	for _, v := range []string{inline, keyed} {
		got, err := child.DecodeList(ctx, st, "job-1", v)
		if err != nil || !slices.Equal(got, shards) {
			t.Errorf("DecodeList(%q) = %v, %v", v, got, err)
		}
	}
	// A key outside the job's lists is refused, not read.
	for _, v := range []string{"@datasets/x/manifest.json", "@" + batch.Prefix + "job-2/children/a.txt", "@" + batch.Prefix + "job-1/children/../manifest.json"} {
		if _, err := child.DecodeList(ctx, st, "job-1", v); !errors.Is(err, child.ErrContract) {
			t.Errorf("DecodeList(%q): %v, want ErrContract", v, err)
		}
	}
}

// FuzzParseList: a shard list comes from the environment or the store; no
// input may panic or expand beyond MaxListShards, and what parses formats
// back to the same indices.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"0", "0-3", "3,7,9", "0-2,5,7-8,20", "9,3-4", "", "x", "3-1", "-1", "0-999999999999", "1-", "0-4194303,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := child.ParseList(s)
		if err != nil {
			if !errors.Is(err, child.ErrContract) {
				t.Fatalf("error %v does not wrap ErrContract", err)
			}
			return
		}
		if len(got) == 0 || len(got) > child.MaxListShards {
			t.Fatalf("%d shards", len(got))
		}
		again, err := child.ParseList(child.FormatList(got))
		if err != nil || !slices.Equal(again, got) {
			t.Fatalf("%q: does not round-trip: %v", s, err)
		}
	})
}
