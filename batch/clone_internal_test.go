package batch

import (
	"fmt"
	"reflect"
	"testing"
	"time"
)

// cloneTestShards is n shards in every shape a record takes: pointers set or
// not, no, one or two errors, an empty but non-nil error list.
func cloneTestShards(n int) []ShardRecord {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	out := make([]ShardRecord, n)
	for i := range out {
		s := ShardRecord{Name: fmt.Sprintf("part-%d", i), State: ShardSucceeded, Attempts: 1 + i%3, Done: i}
		if i%2 == 0 {
			rows := int64(i)
			s.Rows = &rows
		}
		if i%3 != 0 {
			start := at.Add(time.Duration(i) * time.Second)
			s.StartedAt = &start
		}
		if i%5 != 0 {
			end := at.Add(time.Duration(i) * time.Minute)
			s.FinishedAt = &end
		}
		switch i % 4 {
		case 1:
			s.Errors = []AttemptError{{Attempt: 1, Error: fmt.Sprint("exit ", i), At: at}}
		case 2:
			s.Errors = []AttemptError{{Attempt: 1, Error: "a", At: at}, {Attempt: 2, Error: "b", At: at}}
		case 3:
			s.Errors = []AttemptError{}
		}
		out[i] = s
	}
	return out
}

// TestCloneShards: the copy of a manifest's shards equals what copying
// each record (ShardRecord.clone) gives, shares nothing with the original,
// and one record's errors grow without touching the next's.
func TestCloneShards(t *testing.T) {
	src := cloneTestShards(41)
	want := make([]ShardRecord, len(src))
	for i, s := range src {
		want[i] = s.clone()
	}
	got := cloneShards(src)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cloneShards differs from cloning each record:\n got %+v\nwant %+v", got, want)
	}
	for i := range got {
		s := &got[i]
		if s.Rows != nil {
			*s.Rows = -1
		}
		if s.StartedAt != nil {
			*s.StartedAt = time.Time{}
		}
		if s.FinishedAt != nil {
			*s.FinishedAt = time.Time{}
		}
		for j := range s.Errors {
			s.Errors[j].Error = "changed"
		}
		s.Errors = append(s.Errors, AttemptError{Attempt: 9, Error: "appended"})
	}
	if !reflect.DeepEqual(cloneShards(src), want) {
		t.Fatal("changing the copy changed the original")
	}
	for i := range got {
		if n := len(got[i].Errors); n != len(want[i].Errors)+1 || got[i].Errors[n-1].Error != "appended" {
			t.Fatalf("shard %d: errors %+v after appending one to each shard's", i, got[i].Errors)
		}
	}
}

// TestCloneAllocations: copying a manifest (what Status answers) costs a
// number of allocations that does not grow with its shards.
func TestCloneAllocations(t *testing.T) {
	at := time.Now()
	for _, n := range []int{10, 1000} {
		m := &Manifest{JobID: "j", Params: []byte(`{}`), StartedAt: &at, Labels: map[string]string{"a": "b"}, Shards: cloneTestShards(n)}
		if allocs := testing.AllocsPerRun(5, func() { m.clone() }); allocs > 12 {
			t.Errorf("copying a manifest of %d shards: %.0f allocations, want at most 12", n, allocs)
		}
	}
}
