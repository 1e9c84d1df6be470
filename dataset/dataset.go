// Package dataset is flightbatch's catalog of datasets: named sets of shards
// (Arrow IPC or Parquet files) under datasets/<name>/ in a store. It lists them,
// describes them (schema, shards, row counts, a version), reads a shard record
// batch by record batch, and writes new datasets shard by shard so that a
// dataset becomes visible only once it is whole.
package dataset

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/internal/ipccheck"
	"github.com/flightbatch/flightbatch/store"
)

var (
	// ErrNotFound is wrapped by errors about a dataset or shard that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalid is wrapped by errors about a bad name or unreadable shard.
	ErrInvalid = errors.New("invalid")
)

// Prefix is the store prefix that holds every dataset.
const Prefix = "datasets/"

// IndexFile is the sidecar a dataset written by flightbatch carries: its shards
// with their row counts. It only saves reading the shards to count their rows:
// a dataset whose index is damaged is still its shards, with row counts
// unknown until the index is rebuilt (RebuildIndex).
const IndexFile = "_dataset.json"

// uploadingMarker hides a dataset while it is being written.
const uploadingMarker = "_uploading"

// ValidName reports whether name is a valid dataset (or shard) name.
func ValidName(name string) error {
	if !nameForm(name) || strings.Contains(name, "..") {
		return fmt.Errorf("dataset: name %s must match [a-z0-9][a-z0-9_.-]{0,127}, without \"..\": %w", clip.Quote(name), ErrInvalid)
	}
	return nil
}

// nameForm reports whether name matches ^[a-z0-9][a-z0-9_.-]{0,127}$. It is
// checked by hand: compiling that expression (the bounded repeat unrolled)
// took a third of a millisecond at the start of every process, every worker
// child included.
func nameForm(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// Format is a shard's file format.
type Format string

// The shard formats.
const (
	FormatArrow   Format = "arrow"
	FormatParquet Format = "parquet"
)

// Shard is one file of a dataset.
type Shard struct {
	// Name is the file name without its extension, e.g. "part-00003".
	Name   string `json:"name"`
	Key    string `json:"key"`
	Format Format `json:"format"`
	Size   int64  `json:"size"`
	// Rows is the shard's record count, or -1 when unknown without reading it.
	Rows int64  `json:"rows"`
	ETag string `json:"etag,omitempty"`
}

// Dataset describes a dataset.
type Dataset struct {
	Name   string
	Shards []Shard
	// Version identifies the content: it changes when any shard does.
	Version string
}

// Rows is the total record count, or -1 if some shard's count is unknown.
func (d *Dataset) Rows() int64 {
	var n int64
	for _, s := range d.Shards {
		if s.Rows < 0 {
			return -1
		}
		n += s.Rows
	}
	return n
}

// Bytes is the total size of the shards.
func (d *Dataset) Bytes() int64 {
	var n int64
	for _, s := range d.Shards {
		n += s.Size
	}
	return n
}

// Shard finds a shard by name.
func (d *Dataset) Shard(name string) (Shard, error) {
	for _, s := range d.Shards {
		if s.Name == name {
			return s, nil
		}
	}
	return Shard{}, fmt.Errorf("dataset %s: shard %s: %w", d.Name, clip.Quote(name), ErrNotFound)
}

// Catalog finds and reads datasets in a store.
type Catalog struct {
	st *store.Store
}

// NewCatalog returns the catalog of the datasets in st.
func NewCatalog(st *store.Store) *Catalog { return &Catalog{st: st} }

// Store is the store the catalog reads.
func (c *Catalog) Store() *store.Store { return c.st }

// List returns the names of the complete datasets, sorted.
func (c *Catalog) List(ctx context.Context) ([]string, error) {
	dirs, err := c.st.ListDirs(ctx, Prefix)
	if err != nil {
		return nil, fmt.Errorf("dataset: list: %w", err)
	}
	var out []string
	for _, d := range dirs {
		if ValidName(d) != nil {
			continue
		}
		ds, err := c.Get(ctx, d)
		if err != nil || len(ds.Shards) == 0 {
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

type index struct {
	Shards []Shard `json:"shards"`
}

// Get describes the dataset called name. A dataset is every .arrow and .parquet
// file under datasets/<name>/ (so one can be registered over files that already
// exist); a dataset still being uploaded is not found.
func (c *Catalog) Get(ctx context.Context, name string) (*Dataset, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	prefix := Prefix + name + "/"
	objs, err := c.st.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	var idx *index
	rows := map[string]int64{}
	ds := &Dataset{Name: name}
	for _, o := range objs {
		rel := strings.TrimPrefix(o.Key, prefix)
		switch {
		case rel == uploadingMarker:
			return nil, fmt.Errorf("dataset %s: still being uploaded: %w", name, ErrNotFound)
		case rel == recordingIndexFile:
			ix, err := readRecordingIndex(ctx, c.st, o.Key)
			if err != nil {
				return nil, fmt.Errorf("dataset %s: %w", name, err)
			}
			st, err := c.st.Stat(ctx, o.Key)
			if err != nil {
				return nil, fmt.Errorf("dataset %s: %w", name, err)
			}
			return recordingDataset(name, o.Key, st, ix), nil
		case rel == IndexFile:
			data, err := c.st.ReadAll(ctx, o.Key)
			if err != nil {
				return nil, fmt.Errorf("dataset %s: %w", name, err)
			}
			idx = &index{}
			if err := json.Unmarshal(data, idx); err != nil {
				// Damage to the index loses only the row counts it keeps.
				idx = nil
				continue
			}
			for _, s := range idx.Shards {
				rows[s.Key] = s.Rows
			}
			continue
		case strings.Contains(rel, "/"):
			continue
		}
		ext := path.Ext(rel)
		var f Format
		switch ext {
		case ".arrow", ".feather", ".ipc":
			f = FormatArrow
		case ".parquet":
			f = FormatParquet
		default:
			continue
		}
		sh := Shard{Name: strings.TrimSuffix(rel, ext), Key: o.Key, Format: f, Size: o.Size, Rows: -1}
		ds.Shards = append(ds.Shards, sh)
	}
	if len(ds.Shards) == 0 {
		return nil, fmt.Errorf("dataset %q: %w", name, ErrNotFound)
	}
	sort.Slice(ds.Shards, func(i, j int) bool { return ds.Shards[i].Key < ds.Shards[j].Key })
	h := sha256.New()
	for i := range ds.Shards {
		s := &ds.Shards[i]
		if n, ok := rows[s.Key]; ok {
			s.Rows = n
		} else if s.Format == FormatParquet {
			if n, err := c.parquetRows(ctx, *s); err == nil {
				s.Rows = n
			}
		}
		o, err := c.st.Stat(ctx, s.Key)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w", name, err)
		}
		s.ETag = o.ETag
		fmt.Fprintf(h, "%s\x00%d\x00%s\x00", s.Key, s.Size, s.ETag)
	}
	ds.Version = hex.EncodeToString(h.Sum(nil))[:16]
	return ds, nil
}

// StaleUpload reports whether name is an upload that has not finished and
// was last written before cutoff: the leftovers of an uploader that died.
func (c *Catalog) StaleUpload(ctx context.Context, name string, cutoff time.Time) (bool, error) {
	o, err := c.st.Stat(ctx, Prefix+name+"/"+uploadingMarker)
	if errors.Is(err, store.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !o.ModTime.Before(cutoff) {
		return false, nil
	}
	objs, err := c.st.List(ctx, Prefix+name+"/")
	if err != nil {
		return false, err
	}
	for _, x := range objs {
		if !x.ModTime.Before(cutoff) {
			return false, nil
		}
	}
	return true, nil
}

// CheckIndex reports what is wrong with a dataset's index: "" if it is
// absent (a dataset registered over existing files) or sound.
func (c *Catalog) CheckIndex(ctx context.Context, name string) (string, error) {
	key := Prefix + name + "/" + IndexFile
	data, err := c.st.ReadAll(ctx, key)
	if errors.Is(err, store.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var idx index
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Sprintf("not valid JSON (%d bytes): %v", len(data), err), nil
	}
	for _, s := range idx.Shards {
		if ok, err := c.st.Exists(ctx, s.Key); err != nil {
			return "", err
		} else if !ok {
			return fmt.Sprintf("lists shard %s, which does not exist", s.Key), nil
		}
	}
	return "", nil
}

// RebuildIndex writes a dataset's index anew from its shards, counting their
// rows, and returns the number of shards.
func (c *Catalog) RebuildIndex(ctx context.Context, name string) (int, error) {
	ds, err := c.Get(ctx, name)
	if err != nil {
		return 0, err
	}
	for i := range ds.Shards {
		s := &ds.Shards[i]
		r, err := c.OpenShard(ctx, *s, memory.DefaultAllocator)
		if err != nil {
			return 0, fmt.Errorf("count the rows of %s: %w", s.Key, err)
		}
		var n int64
		for r.Next() {
			n += r.RecordBatch().NumRows()
		}
		err = r.Err()
		r.Release()
		if err != nil {
			return 0, fmt.Errorf("count the rows of %s: %w", s.Key, err)
		}
		s.Rows = n
		s.ETag = ""
	}
	data, err := json.MarshalIndent(index{Shards: ds.Shards}, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := c.st.WriteAll(ctx, Prefix+name+"/"+IndexFile, data); err != nil {
		return 0, fmt.Errorf("dataset %s: %w", name, err)
	}
	return len(ds.Shards), nil
}

// Schema reads the schema of a dataset (from its first shard).
func (c *Catalog) Schema(ctx context.Context, ds *Dataset) (*arrow.Schema, error) {
	if schema, ok, err := c.recordingSchema(ctx, ds); ok {
		return schema, err
	}
	r, err := c.OpenShard(ctx, ds.Shards[0], memory.DefaultAllocator)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	return r.Schema(), nil
}

// OpenShard opens a shard for reading record batch by record batch with ranged
// reads; the whole shard is never held in memory.
func (c *Catalog) OpenShard(ctx context.Context, sh Shard, mem memory.Allocator) (array.RecordReader, error) {
	return OpenFile(ctx, c.st, sh.Key, sh.Format, mem)
}

// OpenFile opens a stored Arrow IPC or Parquet file as a record reader. The
// bytes are not trusted: every batch is validated before it is handed on, and
// a file that cannot be read as what it claims to be gives an error wrapping
// ErrDamaged and naming it, never a panic. An error of the store itself (an
// outage) is reported as such.
func OpenFile(ctx context.Context, st *store.Store, key string, f Format, mem memory.Allocator) (array.RecordReader, error) {
	if f == FormatRecording {
		return openRecordingShard(ctx, st, key, mem)
	}
	sf, err := st.OpenFile(ctx, key)
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			return nil, fmt.Errorf("dataset: open %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("dataset: open %s: %w", key, err)
	}
	file := &recordingFile{File: sf}
	var rr array.RecordReader
	err = Protect("dataset: "+key, ErrDamaged, func() error {
		switch f {
		case FormatArrow:
			footer, err := checkFooter(file)
			if err != nil {
				return fmt.Errorf("dataset: read Arrow file %s: %v: %w", key, err, ErrDamaged)
			}
			fr, err := ipc.NewFileReader(file, ipc.WithAllocator(mem))
			if err != nil {
				return fmt.Errorf("dataset: read Arrow file %s: %v: %w", key, err, ErrDamaged)
			}
			ar, err := newArrowReader(file, fr, footer, mem, blockPoolFrom(ctx), lazyFrom(ctx))
			switch {
			case err != nil:
				fr.Close()
				return fmt.Errorf("dataset: read Arrow file %s: %v: %w", key, err, ErrDamaged)
			case ar != nil:
				rr = ar
			default:
				rr = newFileRecordReader(fr)
			}
			return nil
		case FormatParquet:
			var err error
			rr, err = openParquet(ctx, file, key, mem)
			return err
		}
		return fmt.Errorf("dataset: %s: unknown format %s: %w", key, clip.Quote(string(f)), ErrInvalid)
	})
	if err != nil {
		_ = sf.Close()
		return nil, file.ioError(key, err)
	}
	r := &checkedReader{RecordReader: rr, key: key, file: file}
	r.refs.Store(1)
	return r, nil
}

// arrowMagic ends an Arrow IPC file, after the footer and its length.
const arrowMagic = "ARROW1"

// maxFooterBytes bounds the footer of an Arrow IPC file: a schema and an index
// of blocks, kilobytes in practice.
const maxFooterBytes = 64 << 20

// checkFooter verifies the footer of an Arrow IPC file before arrow-go
// decodes it (see ipccheck), and returns it.
func checkFooter(f *recordingFile) ([]byte, error) {
	size := f.Size()
	if size < int64(len(arrowMagic))+4 {
		return nil, fmt.Errorf("%d bytes are too few for an Arrow IPC file", size)
	}
	var tail [10]byte
	if _, err := f.ReadAt(tail[:], size-10); err != nil {
		return nil, err
	}
	if string(tail[4:]) != arrowMagic {
		return nil, errors.New("not an Arrow IPC file: it does not end with ARROW1")
	}
	n := int64(int32(binary.LittleEndian.Uint32(tail[:4])))
	if n <= 0 || n > maxFooterBytes || n > size-10 {
		return nil, fmt.Errorf("the footer length %d does not fit the file's %d bytes", n, size)
	}
	footer := make([]byte, n)
	if _, err := f.ReadAt(footer, size-10-n); err != nil {
		return nil, err
	}
	return footer, ipccheck.Footer(footer)
}

// recordingFile remembers the last error of the store while a reader reads
// it, so that an outage is not taken for damaged bytes.
type recordingFile struct {
	*store.File
	mu  sync.Mutex
	err error
}

func (f *recordingFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > f.Size() {
		// A reader that asks for this was misled by the file's own bytes.
		return 0, fmt.Errorf("read at offset %d, outside the file's %d bytes", off, f.Size())
	}
	n, err := f.File.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) {
		f.mu.Lock()
		f.err = err
		f.mu.Unlock()
	}
	return n, err
}

// Unchanged is the store's File.Unchanged, its error remembered as a read's.
func (f *recordingFile) Unchanged() error {
	err := f.File.Unchanged()
	if err != nil {
		f.mu.Lock()
		f.err = err
		f.mu.Unlock()
	}
	return err
}

// ioError returns the store's error if one explains err, else err.
func (f *recordingFile) ioError(key string, err error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return fmt.Errorf("dataset: read %s: %w", key, f.err)
	}
	return err
}

// fileRecordReader reads an Arrow IPC file's record batches in order.
type fileRecordReader struct {
	refs int64
	fr   *ipc.FileReader
	i    int
	cur  arrow.RecordBatch
	err  error
}

func newFileRecordReader(fr *ipc.FileReader) *fileRecordReader {
	return &fileRecordReader{refs: 1, fr: fr}
}

func (r *fileRecordReader) Retain() { r.refs++ }

func (r *fileRecordReader) Release() {
	r.refs--
	if r.refs == 0 {
		if r.cur != nil {
			r.cur.Release()
			r.cur = nil
		}
		r.fr.Close()
	}
}

func (r *fileRecordReader) Schema() *arrow.Schema { return r.fr.Schema() }

func (r *fileRecordReader) Next() bool {
	if r.cur != nil {
		r.cur.Release()
		r.cur = nil
	}
	if r.err != nil || r.i >= r.fr.NumRecords() {
		return false
	}
	rec, err := r.fr.RecordBatchAt(r.i)
	if err != nil {
		r.err = err
		return false
	}
	r.i++
	r.cur = rec
	return true
}

func (r *fileRecordReader) RecordBatch() arrow.RecordBatch { return r.cur }

// Record returns the current batch.
//
// Deprecated: use RecordBatch.
func (r *fileRecordReader) Record() arrow.RecordBatch { return r.cur }

func (r *fileRecordReader) Err() error { return r.err }
