package batch

import (
	"fmt"
	"slices"
	"time"
)

// ShardQuery selects a page of a job's shards, in the manifest's order.
type ShardQuery struct {
	// State keeps the shards in this state only; "" keeps all.
	State ShardState
	// From is the manifest position the page starts at.
	From int
	// Limit is the most shards on the page (at least 1).
	Limit int
}

// ShardPage is a job without its shards, the counts of its shards by state,
// and a page of its shards.
type ShardPage struct {
	// Job is the job's manifest without its shards (Shards is nil).
	Job    *Manifest
	Counts Counts
	Shards []ShardRecord
	// Positions are the positions of Shards in the manifest.
	Positions []int
	// Next is the position of the first shard after the page that the
	// query keeps, or -1 when there is none.
	Next int
}

// ShardPage returns the page of the manifest's shards that q selects. The
// page shares the manifest's shard records (their errors and times).
func (m *Manifest) ShardPage(q ShardQuery) *ShardPage {
	head := *m
	head.Shards = nil
	p := &ShardPage{Job: &head, Counts: m.Counts(), Next: -1}
	limit := max(q.Limit, 1)
	for i := max(q.From, 0); i < len(m.Shards); i++ {
		if q.State != "" && m.Shards[i].State != q.State {
			continue
		}
		if len(p.Shards) == limit {
			p.Next = i
			break
		}
		p.Shards = append(p.Shards, m.Shards[i])
		p.Positions = append(p.Positions, i)
	}
	return p
}

// ShardPage returns a copy of the page of a job's shards that q selects:
// however many shards the job has, it copies the job's summary and the
// page's shards only.
func (mg *Manager) ShardPage(id string, q ShardQuery) (*ShardPage, error) {
	mg.mu.Lock()
	e, ok := mg.jobs[id]
	var m *Manifest
	if ok {
		m = e.m // replaced, never changed in place
	}
	mg.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("job %q: %w", id, ErrNotFound)
	}
	// A running job's shards change in place (see entry).
	e.shards.RLock()
	p := m.ShardPage(q)
	for i, s := range p.Shards {
		p.Shards[i] = s.clone()
	}
	e.shards.RUnlock()
	p.Job = p.Job.clone()
	return p, nil
}

// clone is a copy of the record that shares nothing with it.
func (s ShardRecord) clone() ShardRecord {
	s.Errors = append([]AttemptError(nil), s.Errors...)
	s.Rows = clonePtr(s.Rows)
	s.StartedAt = clonePtr(s.StartedAt)
	s.FinishedAt = clonePtr(s.FinishedAt)
	return s
}

// cloneShards is a copy of shards that shares nothing with them, each
// record as clone copies it, with the values that the records' pointers and
// error lists point to allocated together: a handful of allocations however
// many shards there are (Status copies whole manifests).
func cloneShards(shards []ShardRecord) []ShardRecord {
	out := slices.Clone(shards)
	var rows, times, errs int
	for i := range shards {
		s := &shards[i]
		if s.Rows != nil {
			rows++
		}
		if s.StartedAt != nil {
			times++
		}
		if s.FinishedAt != nil {
			times++
		}
		errs += len(s.Errors)
	}
	// Appended to within their capacities, so never moved.
	rowVals := make([]int64, 0, rows)
	timeVals := make([]time.Time, 0, times)
	errVals := make([]AttemptError, 0, errs)
	for i := range out {
		s := &out[i]
		if s.Rows != nil {
			rowVals = append(rowVals, *s.Rows)
			s.Rows = &rowVals[len(rowVals)-1]
		}
		if s.StartedAt != nil {
			timeVals = append(timeVals, *s.StartedAt)
			s.StartedAt = &timeVals[len(timeVals)-1]
		}
		if s.FinishedAt != nil {
			timeVals = append(timeVals, *s.FinishedAt)
			s.FinishedAt = &timeVals[len(timeVals)-1]
		}
		if len(s.Errors) == 0 {
			s.Errors = nil
			continue
		}
		// Capped, so that appending to one record's errors moves them
		// rather than overwriting the next record's.
		from := len(errVals)
		errVals = append(errVals, s.Errors...)
		s.Errors = errVals[from:len(errVals):len(errVals)]
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
