package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flightbatch/flightbatch/store"
)

// RunShards runs one attempt of a child that has several shards, one after
// the other. A shard whose part already exists (an earlier attempt wrote it)
// is skipped; a failing shard does not stop the others. The error joins every
// shard's error.
func (w *Worker) RunShards(ctx context.Context, jobID string, shards []int, attempt int) error {
	// The request names the shards and never changes; jobs from before
	// requests were kept have only their manifest.
	m, err := ReadRequest(ctx, w.Store, jobID)
	if errors.Is(err, ErrNotFound) {
		m, err = ReadManifest(ctx, w.Store, jobID)
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, shard := range shards {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if shard >= 0 && shard < len(m.Shards) {
			ok, err := w.Store.Exists(ctx, PartKey(jobID, m.Shards[shard].Name))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				w.logger().Info("part exists; shard skipped", "job", jobID, "shard", m.Shards[shard].Name)
				continue
			}
		}
		if err := w.RunShard(ctx, jobID, shard, attempt); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ReadAttemptError returns the error a failed attempt of a shard's child
// recorded in the store (see Worker.RunShard), or nil and no error if that
// attempt recorded none.
func ReadAttemptError(ctx context.Context, st *store.Store, jobID, shard string, attempt int) (*AttemptError, error) {
	data, err := st.ReadAll(ctx, attemptKey(jobID, shard, attempt))
	if errors.Is(err, store.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("batch: read attempt %d of job %s shard %s: %w", attempt, jobID, shard, err)
	}
	var ae AttemptError
	if err := json.Unmarshal(data, &ae); err != nil {
		return nil, fmt.Errorf("batch: decode attempt %d of job %s shard %s: %w", attempt, jobID, shard, err)
	}
	return &ae, nil
}
