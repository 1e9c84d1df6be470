package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/flightbatch/flightbatch/store"
)

// FormatShardList writes shard indices compactly, in the form ParseShardList
// reads: comma-separated indices, with runs of consecutive indices as ranges
// ("0-9999,10003,10007-10010"). The order is kept.
func FormatShardList(shards []int) string {
	var b strings.Builder
	for i := 0; i < len(shards); {
		j := i
		for j+1 < len(shards) && shards[j+1] == shards[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(shards[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(shards[j]))
		}
		i = j + 1
	}
	return b.String()
}

// ParseShardList reads a list written by FormatShardList.
func ParseShardList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("shard list: %q is not a shard index or a range A-B", part)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("shard list: %q is not a range A-B with A <= B", part)
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("shard list: no shard given")
	}
	return out, nil
}

// ChildShards is the part of list that child index of size children runs:
// list[index], list[index+children], ... A job with more shards than an
// executor has children gives each child several shards this way.
func ChildShards(list []int, index, children int) []int {
	if children < 1 {
		children = 1
	}
	var out []int
	for i := index; i >= 0 && i < len(list); i += children {
		out = append(out, list[i])
	}
	return out
}

// RunShards runs one attempt of a child that has several shards, one after
// the other. A shard whose part already exists (an earlier attempt wrote it)
// is skipped; a failing shard does not stop the others. The error joins every
// shard's error.
func (w *Worker) RunShards(ctx context.Context, jobID string, shards []int, attempt int) error {
	m, err := ReadManifest(ctx, w.Store, jobID)
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
