package child

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/store"
)

// Records is what an executor learns of its children's attempts from what
// they left in the store: the error an attempt recorded, and whether a shard's
// part exists. Shards are named by their index in the job, as executors know
// them; an executor need not read a job's manifest. Implementations are safe
// for concurrent use.
type Records interface {
	// AttemptError returns the error that attempt of the child running shard
	// of job jobID recorded, or nil and no error if it recorded none.
	AttemptError(ctx context.Context, jobID string, shard, attempt int) (*batch.AttemptError, error)
	// HasPart reports whether shard of job jobID has its part.
	HasPart(ctx context.Context, jobID string, shard int) (bool, error)
}

// StoreRecords reads the records workers write (batch.Worker.RunShard) in a
// store.
type StoreRecords struct {
	st *store.Store

	mu    sync.Mutex
	names map[string][]string // shard names by job; they never change
}

var _ Records = (*StoreRecords)(nil)

// NewStoreRecords returns the records of the jobs in st.
func NewStoreRecords(st *store.Store) *StoreRecords {
	return &StoreRecords{st: st, names: map[string][]string{}}
}

// name returns the name of shard of job jobID, or "" when the job has no such
// shard.
func (r *StoreRecords) name(ctx context.Context, jobID string, shard int) (string, error) {
	r.mu.Lock()
	names, ok := r.names[jobID]
	r.mu.Unlock()
	if !ok {
		// The request names the shards and never changes; jobs from
		// before requests were kept have only their manifest.
		m, err := batch.ReadRequest(ctx, r.st, jobID)
		if errors.Is(err, batch.ErrNotFound) {
			m, err = batch.ReadManifest(ctx, r.st, jobID)
		}
		if err != nil {
			return "", fmt.Errorf("child: %w", err)
		}
		for _, s := range m.Shards {
			names = append(names, s.Name)
		}
		r.mu.Lock()
		r.names[jobID] = names
		r.mu.Unlock()
	}
	if shard < 0 || shard >= len(names) {
		return "", nil
	}
	return names[shard], nil
}

// AttemptError implements Records. attempt is the executor's number, within
// its start; the record is the one of the job's attempt it stands for
// (batch.AttemptNumber).
func (r *StoreRecords) AttemptError(ctx context.Context, jobID string, shard, attempt int) (*batch.AttemptError, error) {
	name, err := r.name(ctx, jobID, shard)
	if err != nil || name == "" {
		return nil, err
	}
	n, err := batch.AttemptNumber(ctx, r.st, jobID, name, attempt)
	if err != nil {
		return nil, fmt.Errorf("child: %w", err)
	}
	return batch.ReadAttemptError(ctx, r.st, jobID, name, n)
}

// HasPart implements Records.
func (r *StoreRecords) HasPart(ctx context.Context, jobID string, shard int) (bool, error) {
	name, err := r.name(ctx, jobID, shard)
	if err != nil || name == "" {
		return false, err
	}
	ok, err := r.st.Exists(ctx, batch.PartKey(jobID, name))
	if err != nil {
		return false, fmt.Errorf("child: %w", err)
	}
	return ok, nil
}
