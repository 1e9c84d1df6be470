package slurm

import (
	"testing"
)

// FuzzParseHandle: a handle read from a manifest in the store never crashes
// the executor, and one it accepts formats back to itself.
func FuzzParseHandle(f *testing.F) {
	for _, s := range []string{"20261128T201501123Z-9f2c1a;3;1001;0-7;42", "20261128T201501123Z-9f2c1a;1;2;0-2,5;1,2", "x;1;1;0;1", "20261128T201501123Z-9f2c1a;0;1;0-99999999999;1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parseHandle(s)
		if err != nil {
			return
		}
		if got := formatHandle(h); got != s {
			h2, err := parseHandle(got)
			if err != nil || formatHandle(h2) != got {
				t.Fatalf("parseHandle(%q) formats as %q, which does not read back", s, got)
			}
		}
	})
}

// FuzzParseShowJob: whatever scontrol prints, parsing gives tasks inside the
// array or an error.
func FuzzParseShowJob(f *testing.F) {
	f.Add("JobId=7 ArrayJobId=7 ArrayTaskId=1-3%2 JobState=PENDING Reason=None Restarts=0 ExitCode=0:0\n", 4)
	f.Add("JobId=12 JobState=RUNNING Restarts=2 ExitCode=1:9\n", 1)
	f.Fuzz(func(t *testing.T, out string, n int) {
		n = n%2000 + 1
		if n < 1 {
			n = -n + 1
		}
		tasks, err := parseShowJob([]byte(out), n)
		if err != nil {
			return
		}
		for _, tk := range tasks {
			if tk.index < 0 || tk.index >= n {
				t.Fatalf("task index %d outside an array of %d", tk.index, n)
			}
		}
		parseSacct([]byte(out), n)
	})
}

// FuzzParseResubmits: the resubmissions read from the store never crash the
// executor; the ones it accepts name shards of the run and format back to
// what they read.
func FuzzParseResubmits(f *testing.F) {
	f.Add("1 1 42\n", 3)
	f.Add("0 2 43\n2 1 44\n0 3 45\n", 3)
	f.Add("7 1 42\n", 3)
	f.Add("1 0 x\n", 2)
	f.Fuzz(func(t *testing.T, data string, n int) {
		n = n%100 + 1
		if n < 1 {
			n = -n + 1
		}
		shards := make([]int, n)
		for i := range shards {
			shards[i] = 2 * i
		}
		got, err := parseResubmits([]byte(data), shards)
		if err != nil {
			return
		}
		for _, p := range got {
			if p.offset < 0 || p.offset >= n || p.n != 1 || p.before < 1 || !p.resub {
				t.Fatalf("piece %+v is not a resubmission of a shard of %d", p, n)
			}
		}
		again, err := parseResubmits(formatResubmits(shards, got), shards)
		if err != nil || len(again) != len(got) {
			t.Fatalf("formatResubmits of %+v does not read back: %+v %v", got, again, err)
		}
	})
}
