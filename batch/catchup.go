package batch

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flightbatch/flightbatch/store"
)

// catchUp brings the manifest of a job that has not ended up to what its
// children left in the store. A running job's progress reaches its manifest
// in the store every SaveInterval only, so a server that stopped between two
// writes left a manifest that may lag the job; but each finished part and
// each failed attempt has its own object in the store, written as it
// happened. So a shard whose part is stored has succeeded (numbered in the
// order the parts were written); a failed attempt the manifest lacks is
// added from its record, and counted, so that the shard's next attempt
// takes the next number and no record is overwritten; a shard still pending
// or running whose recorded failures spent its attempts (its budget:
// AttemptBase + MaxAttempts, or the AttemptLimit a loss fixed) has failed, and does not run again. It reads two listings and
// the records the manifest lacks, and says whether it changed m.
func catchUp(ctx context.Context, st *store.Store, m *Manifest) (bool, error) {
	id := m.JobID
	parts, err := st.List(ctx, PartsPrefix(id))
	if err != nil {
		return false, fmt.Errorf("batch: catch up job %s with its parts: %w", id, err)
	}
	attempts, err := st.List(ctx, AttemptsPrefix(id))
	if err != nil {
		return false, fmt.Errorf("batch: catch up job %s with its failed attempts: %w", id, err)
	}
	stored := make(map[string]store.Object, len(parts))
	for _, o := range parts {
		stored[o.Key] = o
	}
	recorded := map[string][]int{}
	for _, o := range attempts {
		if shard, n, ok := attemptOf(id, o.Key); ok {
			recorded[shard] = append(recorded[shard], n)
		}
	}
	changed, newErrors := false, false
	type found struct {
		i  int
		at time.Time
	}
	var done []found
	for i := range m.Shards {
		s := &m.Shards[i]
		for _, n := range recorded[s.Name] {
			if slices.ContainsFunc(s.Errors, func(e AttemptError) bool { return e.Attempt == n }) {
				continue
			}
			rec, err := ReadAttemptError(ctx, st, id, s.Name, n)
			if err != nil {
				return false, err
			}
			if rec == nil {
				continue // deleted since it was listed
			}
			rec.Attempt = n
			s.Errors = append(s.Errors, *rec)
			changed, newErrors = true, true
		}
		sort.SliceStable(s.Errors, func(a, b int) bool { return s.Errors[a].Attempt < s.Errors[b].Attempt })
		last := 0
		if k := len(s.Errors); k > 0 {
			last = s.Errors[k-1].Attempt
		}
		if o, ok := stored[PartKey(id, s.Name)]; ok {
			if s.State != ShardSucceeded {
				done = append(done, found{i, o.ModTime})
			}
			if s.Bytes == 0 && o.Size > 0 {
				s.Bytes, changed = o.Size, true
			}
			// The attempt that wrote the part came after every failed one.
			if n := max(last+1, s.AttemptBase+1); s.Attempts < n {
				s.Attempts, changed = n, true
			}
			continue
		}
		if s.Attempts < last {
			s.Attempts, changed = last, true
		}
		if (s.State == ShardPending || s.State == ShardRunning) && last > 0 && last >= s.budget(m.MaxAttempts) {
			at := s.Errors[len(s.Errors)-1].At.UTC()
			s.State, s.FinishedAt, changed = ShardFailed, &at, true
		}
	}
	sort.SliceStable(done, func(a, b int) bool { return done[a].at.Before(done[b].at) })
	for _, f := range done {
		s := &m.Shards[f.i]
		markSucceeded(m, f.i)
		if s.FinishedAt == nil {
			at := f.at.UTC()
			s.FinishedAt = &at
		}
		if s.Rows == nil {
			if r, ok, err := ReadPartRecord(ctx, st, id, s.Name); err != nil {
				return false, err
			} else if ok {
				n := r.Rows
				s.Rows = &n
			}
		}
		changed = true
	}
	if newErrors {
		boundFailures(m)
	}
	m.cache = manifestCache{} // derived again from the shards as they are now
	return changed, nil
}

// attemptOf is the shard and attempt number of the attempt record at key
// (attemptKey).
func attemptOf(jobID, key string) (shard string, n int, ok bool) {
	shard, ok = attemptShard(jobID, key)
	if !ok {
		return "", 0, false
	}
	num := strings.TrimSuffix(strings.TrimPrefix(key, AttemptsPrefix(jobID)+shard+"."), ".json")
	n, err := strconv.Atoi(num)
	if err != nil || n <= 0 {
		return "", 0, false
	}
	return shard, n, true
}
