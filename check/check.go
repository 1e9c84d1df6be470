// Package check examines a flightbatch store and, when asked, repairs it:
// damaged job manifests (rebuilt from the job's request and parts), damaged
// dataset indexes (rebuilt from the shards), orphaned objects (job parts and
// attempt records of no job, parts of no shard, uploads that never finished)
// and stale temporary files left by writes that never finished. It never deletes a dataset's shard or
// a part of a shard that succeeded.
package check

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// Options tune a check.
type Options struct {
	// Repair fixes what can be fixed.
	Repair bool
	// TempAge is the age past which a temporary file counts as stale
	// (default DefaultTempAge).
	TempAge time.Duration
}

// DefaultTempAge is the default age past which a temporary file is stale: no
// single write lasts that long.
const DefaultTempAge = time.Hour

// Problem is one thing found wrong.
type Problem struct {
	// Kind is "damaged", "orphan", "stale-temp" or "unrepairable".
	Kind string
	// Key is the object or prefix concerned.
	Key string
	// Detail says what is wrong.
	Detail string
	// Repaired says what was done, if anything.
	Repaired string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%-12s %s: %s", p.Kind, p.Key, p.Detail)
	if p.Repaired != "" {
		s += " [repaired: " + p.Repaired + "]"
	}
	return s
}

// Report is what a check found.
type Report struct {
	Datasets, Jobs int
	Problems       []Problem
}

// Unrepaired counts the problems that remain.
func (r *Report) Unrepaired() int {
	n := 0
	for _, p := range r.Problems {
		if p.Repaired == "" {
			n++
		}
	}
	return n
}

// Run checks st.
func Run(ctx context.Context, st *store.Store, opts Options) (*Report, error) {
	if opts.TempAge <= 0 {
		opts.TempAge = DefaultTempAge
	}
	r := &Report{}
	if err := checkTemps(ctx, st, opts, r); err != nil {
		return nil, err
	}
	if err := checkDatasets(ctx, st, opts, r); err != nil {
		return nil, err
	}
	if err := checkJobs(ctx, st, opts, r); err != nil {
		return nil, err
	}
	return r, nil
}

// CleanTemps deletes the temporary files older than age, as a server does at
// start-up, and returns how many it deleted.
func CleanTemps(ctx context.Context, st *store.Store, age time.Duration) (int, error) {
	temps, err := st.Temps(ctx, time.Now().Add(-age))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range temps {
		if err := st.Delete(ctx, o.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func checkTemps(ctx context.Context, st *store.Store, opts Options, r *Report) error {
	temps, err := st.Temps(ctx, time.Now().Add(-opts.TempAge))
	if err != nil {
		return err
	}
	for _, o := range temps {
		p := Problem{Kind: "stale-temp", Key: o.Key, Detail: fmt.Sprintf("an unfinished write of %d bytes, last written %s", o.Size, o.ModTime.UTC().Format(time.RFC3339))}
		if opts.Repair {
			if err := st.Delete(ctx, o.Key); err != nil {
				return err
			}
			p.Repaired = "deleted"
		}
		r.Problems = append(r.Problems, p)
	}
	return nil
}

func checkDatasets(ctx context.Context, st *store.Store, opts Options, r *Report) error {
	cat := dataset.NewCatalog(st)
	names, err := st.ListDirs(ctx, dataset.Prefix)
	if err != nil {
		return err
	}
	for _, name := range names {
		if dataset.ValidName(name) != nil {
			continue
		}
		r.Datasets++
		stale, err := cat.StaleUpload(ctx, name, time.Now().Add(-opts.TempAge))
		if err != nil {
			return err
		}
		if stale {
			if err := orphanPrefix(ctx, st, dataset.Prefix+name+"/", "an upload that never finished", opts, r); err != nil {
				return err
			}
			continue
		}
		problem, err := cat.CheckIndex(ctx, name)
		if err != nil {
			return err
		}
		if problem != "" {
			p := Problem{Kind: "damaged", Key: dataset.Prefix + name + "/" + dataset.IndexFile, Detail: problem}
			if opts.Repair {
				n, err := cat.RebuildIndex(ctx, name)
				if err != nil {
					p.Kind, p.Detail = "unrepairable", problem+"; rebuilding it failed: "+err.Error()
				} else {
					p.Repaired = fmt.Sprintf("rebuilt from its %d shards", n)
				}
			}
			r.Problems = append(r.Problems, p)
		}
		ds, err := cat.Get(ctx, name)
		if err != nil {
			continue // being uploaded, or empty
		}
		for _, sh := range ds.Shards {
			rd, err := cat.OpenShard(ctx, sh, memory.DefaultAllocator)
			if err != nil {
				r.Problems = append(r.Problems, Problem{Kind: "unrepairable", Key: sh.Key, Detail: "unreadable shard: " + err.Error()})
				continue
			}
			rd.Release()
		}
	}
	return nil
}

func checkJobs(ctx context.Context, st *store.Store, opts Options, r *Report) error {
	ids, err := st.ListDirs(ctx, batch.Prefix)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if !batch.ValidJobID(id) {
			continue
		}
		r.Jobs++
		m, merr := batch.ReadManifest(ctx, st, id)
		if merr != nil {
			rebuilt, rerr := batch.RebuildManifest(ctx, st, id)
			switch {
			case rerr != nil && errors.Is(merr, batch.ErrNotFound) && errors.Is(rerr, batch.ErrNotFound):
				// Neither manifest nor request: what is left belongs to no job.
				if err := orphanPrefix(ctx, st, batch.Prefix+id+"/", "objects of no job (no manifest.json, no request.json)", opts, r); err != nil {
					return err
				}
				continue
			case rerr != nil:
				r.Problems = append(r.Problems, Problem{Kind: "unrepairable", Key: batch.ManifestKey(id), Detail: fmt.Sprintf("%v; cannot rebuild: %v", merr, rerr)})
				continue
			}
			p := Problem{Kind: "damaged", Key: batch.ManifestKey(id), Detail: merr.Error()}
			if opts.Repair {
				if err := batch.SaveManifest(ctx, st, rebuilt); err != nil {
					return err
				}
				p.Repaired = fmt.Sprintf("rebuilt from request.json and %d parts, state %s", rebuilt.Counts().Succeeded, rebuilt.State)
			}
			r.Problems = append(r.Problems, p)
			m = rebuilt
		}
		if _, err := batch.ReadRequest(ctx, st, id); err != nil && !errors.Is(err, batch.ErrNotFound) {
			p := Problem{Kind: "damaged", Key: batch.RequestKey(id), Detail: err.Error()}
			if opts.Repair {
				// The request is the manifest as submitted; the manifest
				// still holds everything it held.
				req := *m
				req.State, req.Error, req.Handle, req.StartedAt, req.FinishedAt = batch.StateSubmitted, "", "", nil, nil
				req.Shards = append([]batch.ShardRecord(nil), m.Shards...)
				for i := range req.Shards {
					s := &req.Shards[i]
					s.State, s.Attempts, s.Errors, s.Rows, s.StartedAt, s.FinishedAt = batch.ShardPending, 0, nil, nil, nil, nil
				}
				if err := batch.SaveRequest(ctx, st, &req); err != nil {
					return err
				}
				p.Repaired = "rewritten from manifest.json"
			}
			r.Problems = append(r.Problems, p)
		}
		// Parts of no shard of the job.
		shards := map[string]bool{}
		for _, s := range m.Shards {
			part := batch.PartKey(id, s.Name)
			shards[part] = true
			shards[strings.TrimSuffix(part, ".arrow")+".json"] = true // its record
		}
		parts, err := st.List(ctx, batch.PartsPrefix(id))
		if err != nil {
			return err
		}
		for _, o := range parts {
			if shards[o.Key] {
				continue
			}
			if err := orphan(ctx, st, o.Key, "a part of no shard of the job", opts, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func orphanPrefix(ctx context.Context, st *store.Store, prefix, detail string, opts Options, r *Report) error {
	objs, err := st.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := orphan(ctx, st, o.Key, detail, opts, r); err != nil {
			return err
		}
	}
	return nil
}

func orphan(ctx context.Context, st *store.Store, key, detail string, opts Options, r *Report) error {
	p := Problem{Kind: "orphan", Key: key, Detail: detail}
	if opts.Repair {
		if err := st.Delete(ctx, key); err != nil {
			return err
		}
		p.Repaired = "deleted"
	}
	r.Problems = append(r.Problems, p)
	return nil
}

// Summary is the report's last line.
func (r *Report) Summary() string {
	kinds := map[string]int{}
	for _, p := range r.Problems {
		kinds[p.Kind]++
	}
	var parts []string
	for _, k := range []string{"damaged", "orphan", "stale-temp", "unrepairable"} {
		if kinds[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
		}
	}
	found := "no problems"
	if len(parts) > 0 {
		found = strings.Join(parts, ", ")
	}
	return fmt.Sprintf("checked %d datasets and %d jobs: %s; %d left unrepaired", r.Datasets, r.Jobs, found, r.Unrepaired())
}
