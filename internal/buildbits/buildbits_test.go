package buildbits

import (
	"fmt"
	"hash"
	"runtime"
	"testing"
)

// recorder is a testing.TB that records what Compare reports.
type recorder struct {
	testing.TB
	errs    []string
	skipped bool
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Skipf(string, ...any) {
	r.skipped = true
	runtime.Goexit()
}

// compare runs Compare with the digests ds as pkg on a recorder.
func compare(t *testing.T, pkg string, ds []Digest) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Compare(r, pkg, func(testing.TB) []Digest { return ds })
	}()
	<-done
	return r
}

func TestCompare(t *testing.T) {
	sum := func(name string, b ...byte) Digest {
		return Hash(name, func(h hash.Hash) { h.Write(b) })
	}
	ref := []Digest{sum("a", 1), sum("b", 2)}
	for _, tc := range []struct {
		name string
		pkg  string
		got  []Digest
		errs int
	}{
		{"same", "p", []Digest{sum("b", 2), sum("a", 1)}, 0},
		{"bits differ", "p", []Digest{sum("a", 1), sum("b", 3)}, 1},
		{"case missing", "p", []Digest{sum("a", 1)}, 1},
		{"case added", "p", []Digest{sum("a", 1), sum("b", 2), sum("c", 3)}, 2},
		{"other package", "q", ref, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv(WantEnv, "")
			t.Setenv(OutEnv, dir)
			if r := compare(t, "p", ref); r.skipped || len(r.errs) != 0 {
				t.Fatalf("writing: skipped %v, errors %q", r.skipped, r.errs)
			}
			t.Setenv(OutEnv, "")
			t.Setenv(WantEnv, dir)
			r := compare(t, tc.pkg, tc.got)
			if r.skipped || len(r.errs) != tc.errs {
				t.Errorf("skipped %v, errors %q; want %d errors", r.skipped, r.errs, tc.errs)
			}
		})
	}
	t.Run("unset", func(t *testing.T) {
		t.Setenv(OutEnv, "")
		t.Setenv(WantEnv, "")
		if r := compare(t, "p", ref); !r.skipped {
			t.Errorf("not skipped without %s or %s", OutEnv, WantEnv)
		}
	})
}

func TestHash(t *testing.T) {
	a := Hash("x", func(h hash.Hash) { h.Write([]byte{1}) })
	b := Hash("x", func(h hash.Hash) { h.Write([]byte{2}) })
	if a.Name != "x" || len(a.Sum) != 24 || a.Sum == b.Sum {
		t.Errorf("Hash: %+v and %+v", a, b)
	}
}
