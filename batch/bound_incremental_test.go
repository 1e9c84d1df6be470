package batch

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestBoundNewErrorsAsBoundFailures: bounding each shard's errors as they are
// added, at the cost of what changed, gives the manifest that bounding it
// whole (boundFailures) gives, whatever the order in which shards fail.
func TestBoundNewErrorsAsBoundFailures(t *testing.T) {
	for _, tc := range []struct {
		name           string
		shards, events int
		seed           uint64
	}{
		{"few failures", 50, 30, 1},
		{"past the full ones", 400, 900, 2},
		{"all failing, in reverse", 300, 300, 3},
		{"many attempts", 150, 1200, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(tc.seed, 0))
			inc := &Manifest{}
			raw := &Manifest{}
			for i := range tc.shards {
				inc.Shards = append(inc.Shards, ShardRecord{Name: fmt.Sprintf("part-%04d", i)})
				raw.Shards = append(raw.Shards, ShardRecord{Name: fmt.Sprintf("part-%04d", i)})
			}
			for k := range tc.events {
				i := r.IntN(tc.shards)
				if tc.name == "all failing, in reverse" {
					i = tc.shards - 1 - k
				}
				text := fmt.Sprintf("attempt %d of shard %d failed\n%s", k, i, strings.Repeat("traceback line\n", 200))
				e := AttemptError{Attempt: len(raw.Shards[i].Errors) + 1, Error: text}
				raw.Shards[i].Errors = append(raw.Shards[i].Errors, e)
				first := len(inc.Shards[i].Errors) == 0
				inc.Shards[i].Errors = append(inc.Shards[i].Errors, e)
				inc.boundNewErrors(i, first)
			}
			boundFailures(raw)
			for i := range raw.Shards {
				a, b := inc.Shards[i].Errors, raw.Shards[i].Errors
				if len(a) != len(b) {
					t.Fatalf("shard %d: %d errors, want %d", i, len(a), len(b))
				}
				for j := range a {
					if a[j].Error != b[j].Error {
						t.Fatalf("shard %d attempt %d: bounded as they came %.80q..., bounded whole %.80q...", i, a[j].Attempt, a[j].Error, b[j].Error)
					}
				}
			}
		})
	}
}
