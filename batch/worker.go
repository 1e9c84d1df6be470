package batch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// Worker runs children: it is the one code path every executor uses, in this
// process (local) or in a `flightbatch worker` container (AWS Batch).
type Worker struct {
	Store     *store.Store
	Functions *Registry
	Alloc     memory.Allocator
	// Blocks, when set, lends the buffers that input shards' record
	// batches are read into, each reused once its batch is released (see
	// dataset.BlockPool); functions must then keep nothing of an input
	// batch's memory after releasing it, as Arrow's reference counting asks.
	Blocks *dataset.BlockPool
	Log    *slog.Logger
	// Fault, when set, is called before each attempt; an error it returns fails
	// the attempt. Tests use it to inject failures (see ParseFaults).
	Fault FaultFunc
}

// partWriteBuffer is the buffer between a part's IPC writer and the store.
const partWriteBuffer = 1 << 20

// RunShard runs one attempt of one child: it reads the job's manifest and the
// shard, runs the function, and writes the part atomically. A failed attempt
// leaves no part and records its error in the store. attempt is the
// executor's number of the attempt within its start, from 1; the attempt's
// number in the job continues from the attempts of earlier starts
// (AttemptNumber).
func (w *Worker) RunShard(ctx context.Context, jobID string, shard, attempt int) (err error) {
	// The request holds all a child needs and never changes; jobs from
	// before requests were kept have only their manifest.
	m, err := ReadRequest(ctx, w.Store, jobID)
	if errors.Is(err, ErrNotFound) {
		m, err = ReadManifest(ctx, w.Store, jobID)
	}
	if err != nil {
		return err
	}
	if shard < 0 || shard >= len(m.Shards) {
		return fmt.Errorf("job %s has %d shards; there is no shard %d: %w", jobID, len(m.Shards), shard, ErrNotFound)
	}
	sh := m.Shards[shard]
	if attempt, err = AttemptNumber(ctx, w.Store, jobID, sh.Name, attempt); err != nil {
		return err
	}
	log := w.logger().With("job", jobID, "shard", sh.Name, "attempt", attempt)
	start := time.Now()
	defer func() {
		if err != nil {
			log.Warn("child failed", "err", err)
			ae := AttemptError{Attempt: attempt, Error: err.Error(), At: time.Now().UTC()}
			if werr := recordAttemptError(context.WithoutCancel(ctx), w.Store, jobID, sh.Name, ae); werr != nil {
				log.Error("record failed attempt", "err", werr)
			}
			return
		}
		log.Info("child succeeded", "seconds", time.Since(start).Seconds())
	}()
	// A panic in this attempt (a function's bug, a reader meeting input it
	// does not expect) fails the attempt, recorded above, and not the process
	// that runs it.
	defer func() {
		if r := recover(); r != nil {
			log.Error("child panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			err = fmt.Errorf("child panicked: %v", r)
		}
	}()
	if w.Fault != nil {
		if err := w.Fault(ctx, jobID, sh.Name, attempt); err != nil {
			return err
		}
	}
	fn, err := w.Functions.Get(m.Function)
	if err != nil {
		return err
	}
	schema, err := m.Schema()
	if err != nil {
		return err
	}
	alloc := w.Alloc
	if alloc == nil {
		alloc = memory.DefaultAllocator
	}
	openCtx := ctx
	if w.Blocks != nil {
		openCtx = dataset.WithBlockPool(ctx, w.Blocks)
	}
	in, err := dataset.OpenFile(openCtx, w.Store, sh.Input, sh.Format, alloc)
	if err != nil {
		return fmt.Errorf("read shard %s: %w", sh.Name, err)
	}
	defer in.Release()
	task := Task{JobID: jobID, Shard: sh.Name, Attempt: attempt, Params: m.Params, Schema: schema, Alloc: alloc}
	// The function's own error is reported as it is, not as the store's.
	var runErr error
	err = w.Store.Write(ctx, PartKey(jobID, sh.Name), func(dst io.Writer) error {
		// The IPC writer writes every buffer of every batch on its own;
		// buffered, the part goes to the store in large writes, not in a
		// system call per buffer.
		out := bufio.NewWriterSize(dst, partWriteBuffer)
		var fw *ipc.FileWriter
		open := func(s *arrow.Schema) error {
			var err error
			fw, err = ipc.NewFileWriter(out, ipc.WithSchema(s), ipc.WithAllocator(alloc))
			return err
		}
		if schema != nil {
			if err := open(schema); err != nil {
				return err
			}
		}
		var rows int64
		err := fn.Run(ctx, task, in, func(rec arrow.RecordBatch) error {
			if fw == nil {
				if err := open(rec.Schema()); err != nil {
					return err
				}
			}
			rows += rec.NumRows()
			return fw.Write(rec)
		})
		if err != nil {
			runErr = err
			return err
		}
		if fw == nil {
			runErr = fmt.Errorf("function %s produced no output and its schema is unknown", m.Function)
			return runErr
		}
		if err := fw.Close(); err != nil {
			return err
		}
		if err := out.Flush(); err != nil {
			return err
		}
		// The part's record is written before the part is committed, so a
		// part never exists without it.
		return writePartRecord(ctx, w.Store, jobID, sh.Name, PartRecord{Rows: rows})
	})
	if runErr != nil {
		return runErr
	}
	return err
}

func (w *Worker) logger() *slog.Logger {
	if w.Log != nil {
		return w.Log
	}
	return slog.Default()
}
