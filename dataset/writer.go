package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/store"
)

// ErrExists is wrapped by an error about creating a dataset that already exists.
var ErrExists = errors.New("already exists")

// DefaultShardBytes is the default target size of a shard written by a Writer.
const DefaultShardBytes = 64 << 20

// WriterOptions tune a Writer.
type WriterOptions struct {
	// ShardBytes is the target size of a shard (default DefaultShardBytes).
	ShardBytes int64
	// RampShards and RampBytes, when both are positive, make the first
	// shards smaller so that a small upload still gets several shards to
	// run in parallel: the first RampShards shards target RampBytes, the
	// next RampShards twice that, and so on up to ShardBytes.
	RampShards int
	RampBytes  int64
	// ShardRows, when positive, ends a shard after this many rows, slicing
	// a batch that crosses the boundary.
	ShardRows int64
	// Replace allows replacing an existing dataset of the same name.
	Replace bool
	// MaxShards, when positive, bounds the shards written: a batch that
	// would start one more fails with ErrInvalid.
	MaxShards int
}

// Writer writes a new dataset shard by shard. Until Commit returns, the dataset
// is invisible; Abort (or a crash) leaves nothing visible.
type Writer struct {
	ctx    context.Context
	c      *Catalog
	name   string
	schema *arrow.Schema
	opts   WriterOptions
	shards []Shard

	cur      *shardWriter
	curBytes int64
	curRows  int64
}

// NewWriter starts writing the dataset name with the given schema.
func (c *Catalog) NewWriter(ctx context.Context, name string, schema *arrow.Schema, opts *WriterOptions) (*Writer, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	o := WriterOptions{ShardBytes: DefaultShardBytes}
	if opts != nil {
		o = *opts
		if o.ShardBytes <= 0 {
			o.ShardBytes = DefaultShardBytes
		}
	}
	prefix := Prefix + name + "/"
	existing, err := c.st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	if len(existing) > 0 {
		stale := false
		for _, e := range existing {
			if e.Key == prefix+uploadingMarker {
				stale = true
			}
		}
		if !stale && !o.Replace {
			return nil, fmt.Errorf("dataset %q: %w", name, ErrExists)
		}
	}
	if err := c.st.WriteAll(ctx, prefix+uploadingMarker, nil); err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	for _, e := range existing {
		if e.Key == prefix+uploadingMarker {
			continue
		}
		if err := c.st.Delete(ctx, e.Key); err != nil {
			return nil, fmt.Errorf("dataset %s: %w", name, err)
		}
	}
	return &Writer{ctx: ctx, c: c, name: name, schema: schema, opts: o}, nil
}

// Write appends a record batch; shards are cut at batch boundaries once they
// reach the target size (or, with ShardRows, at exactly that many rows).
func (w *Writer) Write(rec arrow.RecordBatch) error {
	if !rec.Schema().Equal(w.schema) {
		return fmt.Errorf("dataset %s: batch schema %s differs from the dataset's %s: %w", w.name, rec.Schema(), w.schema, ErrInvalid)
	}
	n := rec.NumRows()
	if w.opts.ShardRows <= 0 || n == 0 {
		return w.write(rec)
	}
	for off := int64(0); off < n; {
		room := w.opts.ShardRows
		if w.cur != nil {
			room -= w.curRows
		}
		take := min(room, n-off)
		if off == 0 && take == n {
			return w.write(rec)
		}
		sl := rec.NewSlice(off, off+take)
		err := w.write(sl)
		sl.Release()
		if err != nil {
			return err
		}
		off += take
	}
	return nil
}

// target is the size at which the current shard ends.
func (w *Writer) target() int64 {
	if w.opts.RampShards <= 0 || w.opts.RampBytes <= 0 {
		return w.opts.ShardBytes
	}
	t := w.opts.RampBytes
	for i := len(w.shards) / w.opts.RampShards; i > 0 && t < w.opts.ShardBytes; i-- {
		t *= 2
	}
	return min(t, w.opts.ShardBytes)
}

func (w *Writer) write(rec arrow.RecordBatch) error {
	if w.cur == nil {
		if w.opts.MaxShards > 0 && len(w.shards) >= w.opts.MaxShards {
			return fmt.Errorf("dataset %s: more than %d shards; choose larger shards (shard_mb) or fewer (shards): %w", w.name, w.opts.MaxShards, ErrInvalid)
		}
		key := fmt.Sprintf("%s%s/part-%05d.arrow", Prefix, w.name, len(w.shards))
		sw, err := newShardWriter(w.ctx, w.c.st, key, w.schema)
		if err != nil {
			return err
		}
		w.cur, w.curBytes, w.curRows = sw, 0, 0
	}
	if err := w.cur.fw.Write(rec); err != nil {
		return fmt.Errorf("dataset %s: write shard: %w", w.name, err)
	}
	w.curRows += rec.NumRows()
	w.curBytes += LogicalBytes(rec)
	if w.curBytes >= w.target() || (w.opts.ShardRows > 0 && w.curRows >= w.opts.ShardRows) {
		return w.closeShard()
	}
	return nil
}

// EndShard ends the current shard, so the next batch starts a new one.
func (w *Writer) EndShard() error { return w.closeShard() }

func (w *Writer) closeShard() error {
	if w.cur == nil {
		return nil
	}
	sw := w.cur
	w.cur = nil
	if err := sw.close(); err != nil {
		return fmt.Errorf("dataset %s: %w", w.name, err)
	}
	name := fmt.Sprintf("part-%05d", len(w.shards))
	w.shards = append(w.shards, Shard{Name: name, Key: sw.key, Format: FormatArrow, Rows: w.curRows, Size: sw.size})
	return nil
}

// Commit finishes the last shard and makes the dataset visible.
func (w *Writer) Commit() error {
	if err := w.closeShard(); err != nil {
		return err
	}
	if len(w.shards) == 0 {
		// An empty dataset still gets one (empty) shard so its schema is known.
		sw, err := newShardWriter(w.ctx, w.c.st, fmt.Sprintf("%s%s/part-00000.arrow", Prefix, w.name), w.schema)
		if err != nil {
			return err
		}
		w.cur = sw
		if err := w.closeShard(); err != nil {
			return err
		}
	}
	prefix := Prefix + w.name + "/"
	data, err := json.MarshalIndent(index{Shards: w.shards}, "", "  ")
	if err != nil {
		return err
	}
	if err := w.c.st.WriteAll(w.ctx, prefix+IndexFile, data); err != nil {
		return fmt.Errorf("dataset %s: %w", w.name, err)
	}
	if err := w.c.st.Delete(w.ctx, prefix+uploadingMarker); err != nil {
		return fmt.Errorf("dataset %s: %w", w.name, err)
	}
	return nil
}

// Abort discards everything written. It uses its own context so that it also
// works after the writer's context was cancelled. It deletes what it can and
// returns the first error met; what it could not delete stays, under the
// name's upload marker, until the name is uploaded again.
func (w *Writer) Abort() error {
	if w.cur != nil {
		w.cur.abort()
		w.cur = nil
	}
	ctx := context.WithoutCancel(w.ctx)
	prefix := Prefix + w.name + "/"
	objs, err := w.c.st.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("discarding the upload of dataset %s: %w", w.name, err)
	}
	var first error
	for _, o := range objs {
		if o.Key == prefix+uploadingMarker {
			continue
		}
		if err := w.c.st.Delete(ctx, o.Key); err != nil && first == nil {
			first = err
		}
	}
	if first == nil {
		first = w.c.st.Delete(ctx, prefix+uploadingMarker)
	}
	if first != nil {
		return fmt.Errorf("discarding the upload of dataset %s: %w", w.name, first)
	}
	return nil
}

// shardWriter streams one Arrow IPC file into the store through a pipe.
type shardWriter struct {
	key  string
	pw   *io.PipeWriter
	fw   *ipc.FileWriter
	done chan error
	size int64
}

func newShardWriter(ctx context.Context, st *store.Store, key string, schema *arrow.Schema) (*shardWriter, error) {
	pr, pw := io.Pipe()
	sw := &shardWriter{key: key, pw: pw, done: make(chan error, 1)}
	go func() {
		err := st.Write(ctx, key, func(w io.Writer) error {
			n, err := io.Copy(w, pr)
			sw.size = n
			return err
		})
		pr.CloseWithError(err)
		sw.done <- err
	}()
	fw, err := ipc.NewFileWriter(pw, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		sw.abort()
		return nil, fmt.Errorf("dataset: write %s: %w", key, err)
	}
	sw.fw = fw
	return sw, nil
}

func (sw *shardWriter) close() error {
	if err := sw.fw.Close(); err != nil {
		sw.abort()
		return fmt.Errorf("write %s: %w", sw.key, err)
	}
	sw.pw.Close()
	return <-sw.done
}

func (sw *shardWriter) abort() {
	sw.pw.CloseWithError(errors.New("write aborted"))
	<-sw.done
}
