// Package store is flightbatch's object storage: datasets and job results live in
// one Store, opened from a URL. Three backends satisfy it, all through
// gocloud.dev/blob drivers: file://DIR (a directory on this machine),
// s3://bucket/prefix (AWS S3 or any S3-compatible server, configured through the
// standard AWS chain) and mem:// (in memory, for tests).
//
// Every write is atomic: a reader sees either the whole object or nothing, and a
// write that fails midway leaves nothing behind.
//
// Calls to an s3 store that fail transiently (the endpoint unreachable or
// answering 5xx) are retried with exponential backoff and jitter for up to two
// minutes (the URL parameter retry=DURATION changes that; retry=0 turns it off),
// so an outage of tens of seconds delays them instead of failing them. Streamed
// writes (Write) and reads past an open (NewReader) are not retried: the
// caller retries the whole operation.
//
// Keys are slash-separated. A key should not also be the "directory" of another
// ("a" and "a/b"): S3 holds both, but a file store (and an S3 server that keeps
// objects as files) refuses the second write. In a file store, names shaped like
// a temporary file (KEY.HEX.tmp) are reserved.
//
// A file store lends the blocks that readers ask for with File.Map from
// read-only memory mappings of its files, each under a read lease
// (fcntl(2) F_SETLEASE, on Linux, on local file systems): while one is held,
// another process that opens the file for writing, or truncates it, waits
// until the file's blocks are no longer lent or, at most,
// /proc/sys/fs/lease-break-time (a non-blocking open fails with EAGAIN).
// The URL parameter mmap=false turns this off; files are then read with
// pread(2) only.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
	"gocloud.dev/blob/memblob"
	"gocloud.dev/blob/s3blob"
	"gocloud.dev/gcerrors"

	"github.com/flightbatch/flightbatch/internal/backoff"
)

// ErrNotExist is wrapped by every error about an object that does not exist.
var ErrNotExist = errors.New("object does not exist")

// ErrChanged is wrapped by the error of a read from a file store's File
// whose file was written or truncated (its size or modification time
// changed) since it was opened: the bytes read may belong to neither
// version.
var ErrChanged = errors.New("the file changed while it was read")

// Store holds objects under slash-separated keys.
type Store struct {
	b   *blob.Bucket
	url string
	// file is set for a file:// store, whose writes go through temporary
	// files beside their final path.
	file bool
	// retry governs the retries of a remote store's calls; nil tries once.
	retry *backoff.Policy
	// onError, when set, is told about every failed operation.
	onError func(op string)
	// leases lends a file store's blocks from memory mappings (File.Map);
	// nil when they are read only.
	leases *leaser
}

// Object describes one stored object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
	// ETag identifies the object's content version; it changes when the object does.
	ETag string
}

// Open opens the store at rawURL: file://DIR (created if absent), s3://bucket/prefix
// or mem://. For s3, the region, credentials and endpoint come from the standard AWS
// configuration (environment, shared profile); AWS_ENDPOINT_URL_S3 or
// AWS_ENDPOINT_URL points it at an S3-compatible server, and then path-style
// addressing is used. The query parameters endpoint=URL, region=R and
// use_path_style=true|false override them.
func Open(ctx context.Context, rawURL string) (*Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("store: parse URL %q: %w", rawURL, err)
	}
	var b *blob.Bucket
	var retry *backoff.Policy
	var leases *leaser
	switch u.Scheme {
	case "file":
		dir := u.Host + u.Path
		if u.Opaque != "" {
			dir = u.Opaque
		}
		if dir == "" {
			return nil, fmt.Errorf("store: %q names no directory; use file://DIR", rawURL)
		}
		dir, err = filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("store: resolve %q: %w", rawURL, err)
		}
		// Temporary files go beside their final path, so the rename that
		// completes a write never crosses file systems. No sidecar files: a
		// reader must never see one half written, and files put in place by
		// hand have none.
		b, err = fileblob.OpenBucket(dir, &fileblob.Options{
			CreateDir: true,
			NoTempDir: true,
			Metadata:  fileblob.MetadataDontWrite,
		})
		if err != nil {
			return nil, fmt.Errorf("store: open directory %s: %w", dir, err)
		}
		rawURL = "file://" + dir
		switch v := u.Query().Get("mmap"); v {
		case "", "true":
			leases = newLeaser()
		case "false":
		default:
			return nil, fmt.Errorf("store: %q: mmap=%q is neither true nor false", rawURL, v)
		}
	case "mem":
		b = memblob.OpenBucket(nil)
	case "s3":
		b, err = openS3(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", rawURL, err)
		}
		retry = &backoff.Policy{Initial: 200 * time.Millisecond, Max: 10 * time.Second, Budget: DefaultRetryBudget, Retryable: transient}
		if v := u.Query().Get("retry"); v != "" {
			d, err := time.ParseDuration(v)
			if v == "0" {
				d, err = 0, nil
			}
			if err != nil || d < 0 {
				return nil, fmt.Errorf("store: %q: retry=%q is not a duration such as 30s", rawURL, v)
			}
			retry.Budget = d
			if d == 0 {
				retry = nil
			}
		}
	default:
		return nil, fmt.Errorf("store: unsupported URL %q: use file://DIR, s3://bucket/prefix or mem://", rawURL)
	}
	return &Store{b: b, url: rawURL, file: u.Scheme == "file", retry: retry, leases: leases}, nil
}

// DefaultRetryBudget is how long an s3 store retries a call that fails
// transiently.
const DefaultRetryBudget = 2 * time.Minute

// transient reports whether a remote store's error may pass if tried again:
// not an answer about the object or the request (missing, refused, invalid).
func transient(err error) bool {
	switch gcerrors.Code(err) {
	case gcerrors.NotFound, gcerrors.AlreadyExists, gcerrors.InvalidArgument, gcerrors.FailedPrecondition,
		gcerrors.PermissionDenied, gcerrors.Unimplemented, gcerrors.Canceled:
		return false
	}
	// A short read means the object is shorter than its size said: it
	// changed, and reading it again gives the same.
	return !errors.Is(err, ErrNotExist) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// do runs op, retried as the store's policy says.
func (s *Store) do(ctx context.Context, op func(ctx context.Context) error) error {
	if s.retry == nil {
		return op(ctx)
	}
	return s.retry.Do(ctx, op)
}

func openS3(ctx context.Context, u *url.URL) (*blob.Bucket, error) {
	bucket := u.Host
	if bucket == "" {
		return nil, errors.New("no bucket; use s3://bucket/prefix")
	}
	q := u.Query()
	var opts []func(*config.LoadOptions) error
	if r := q.Get("region"); r != "" {
		opts = append(opts, config.WithRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := q.Get("endpoint")
	pathStyle := endpoint != "" || os.Getenv("AWS_ENDPOINT_URL_S3") != "" || os.Getenv("AWS_ENDPOINT_URL") != ""
	if v := q.Get("use_path_style"); v != "" {
		pathStyle = v == "true"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		// Ranged reads, and objects from servers that store no checksum,
		// carry none to validate; logging that on every read floods the log.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	b, err := s3blob.OpenBucket(ctx, client, bucket, nil)
	if err != nil {
		return nil, err
	}
	if prefix := strings.Trim(u.Path, "/"); prefix != "" {
		b = blob.PrefixedBucket(b, prefix+"/")
	}
	return b, nil
}

// URL is the URL the store was opened with (a file store's directory made absolute).
func (s *Store) URL() string { return s.url }

// Close releases the store's resources. Blocks still lent by Files
// (File.Map) stay valid until released.
func (s *Store) Close() error {
	s.leases.stop()
	return s.b.Close()
}

// ObserveErrors has fn called with the operation ("read", "write", "stat",
// "list", "delete") of every failed store operation, except an object that
// does not exist; the server counts them. Call it before the store is used.
func (s *Store) ObserveErrors(fn func(op string)) { s.onError = fn }

func (s *Store) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if gcerrors.Code(err) == gcerrors.NotFound {
		return fmt.Errorf("store: %s %s: %w", op, key, ErrNotExist)
	}
	if s.onError != nil && !errors.Is(err, context.Canceled) {
		s.onError(op)
	}
	return fmt.Errorf("store: %s %s: %w", op, key, err)
}

// ReadAll reads a whole object.
func (s *Store) ReadAll(ctx context.Context, key string) ([]byte, error) {
	var data []byte
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		data, err = s.b.ReadAll(ctx, key)
		return err
	})
	return data, s.wrap("read", key, err)
}

// NewReader streams an object from its start.
func (s *Store) NewReader(ctx context.Context, key string) (io.ReadCloser, error) {
	var r *blob.Reader
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		r, err = s.b.NewReader(ctx, key, nil)
		return err
	})
	if err != nil {
		return nil, s.wrap("read", key, err)
	}
	return r, nil
}

// Stat describes one object.
func (s *Store) Stat(ctx context.Context, key string) (Object, error) {
	var a *blob.Attributes
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		a, err = s.b.Attributes(ctx, key)
		return err
	})
	if err != nil {
		return Object{}, s.wrap("stat", key, err)
	}
	etag := a.ETag
	var fi os.FileInfo
	if s.file && a.As(&fi) {
		// A file's modification time is too coarse to tell two quick writes
		// of the same size apart, and can be set by hand; every atomic write
		// makes a new inode while the old one still exists, and the change
		// time cannot be set back, so together they tell versions apart
		// (where the system reports them: see fileVersion).
		if ino, ctime, ok := fileVersion(fi); ok {
			etag = fmt.Sprintf("\"%x-%x-%x-%x\"", a.ModTime.UnixNano(), a.Size, ino, ctime)
		}
	}
	return Object{Key: key, Size: a.Size, ModTime: a.ModTime, ETag: etag}, nil
}

// Exists reports whether an object exists.
func (s *Store) Exists(ctx context.Context, key string) (bool, error) {
	var ok bool
	err := s.do(ctx, func(ctx context.Context) error {
		var err error
		ok, err = s.b.Exists(ctx, key)
		return err
	})
	return ok, s.wrap("stat", key, err)
}

// WriteAll writes a whole object atomically.
func (s *Store) WriteAll(ctx context.Context, key string, data []byte) error {
	return s.do(ctx, func(ctx context.Context) error {
		return s.Write(ctx, key, func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
	})
}

// Write creates or replaces the object at key with what fill writes. The object
// appears only if fill returns nil and the write completes; otherwise nothing
// changes.
func (s *Store) Write(ctx context.Context, key string, fill func(w io.Writer) error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w, err := s.b.NewWriter(wctx, key, &blob.WriterOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return s.wrap("write", key, err)
	}
	closed := false
	defer func() {
		if !closed { // fill panicked: abort, so no temporary file stays behind
			cancel()
			_ = w.Close()
		}
	}()
	if err := fill(w); err != nil {
		closed = true
		cancel() // aborts the write: the object is not created
		_ = w.Close()
		return fmt.Errorf("store: write %s: %w", key, err)
	}
	closed = true
	return s.wrap("write", key, w.Close())
}

// Delete removes an object; removing one that does not exist is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	err := s.do(ctx, func(ctx context.Context) error {
		err := s.b.Delete(ctx, key)
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil
		}
		return err
	})
	return s.wrap("delete", key, err)
}

// fileTemp matches the name fileblob gives the temporary file of a write under
// way: the final key, a dot, the time in hexadecimal nanoseconds, ".tmp".
var fileTemp = regexp.MustCompile(`\.[0-9a-f]{1,16}\.tmp$`)

// isTemp reports whether key is a file store's write under way rather than an
// object. In a file store, keys that end like one (".1a2b.tmp") are reserved.
func (s *Store) isTemp(key string) bool {
	return s.file && fileTemp.MatchString(key)
}

// Temps returns a file store's temporary files (writes under way, or left by
// a process killed while writing) last modified before cutoff; other stores
// have none. Delete removes one.
func (s *Store) Temps(ctx context.Context, cutoff time.Time) ([]Object, error) {
	if !s.file {
		return nil, nil
	}
	var out []Object
	err := s.relist(ctx, func() error {
		out = nil
		it := s.b.List(&blob.ListOptions{})
		for {
			o, err := it.Next(ctx)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return s.wrap("list", "", err)
			}
			if s.isTemp(o.Key) && o.ModTime.Before(cutoff) {
				out = append(out, Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// listAgain bounds how many times a file store's listing starts over because
// an entry vanished under it. The file driver walks the directories and
// fails the whole listing with "not found" when a file it read from a
// directory is gone when it looks at it: a write's temporary file renamed
// into place, or an object deleted, while the listing runs. Other stores
// list without that race.
const listAgain = 64

// relist runs a listing, and runs it again while a file store's fails
// because an entry vanished under it (at most listAgain times more).
func (s *Store) relist(ctx context.Context, list func() error) error {
	for i := 0; ; i++ {
		err := list()
		if err == nil || !s.file || !errors.Is(err, ErrNotExist) || i == listAgain || ctx.Err() != nil {
			return err
		}
	}
}

// List returns every object whose key starts with prefix, sorted by key.
func (s *Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	err := s.do(ctx, func(ctx context.Context) error {
		return s.relist(ctx, func() error {
			var err error
			out, err = s.list(ctx, prefix)
			return err
		})
	})
	return out, err
}

func (s *Store) list(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	it := s.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		if s.isTemp(o.Key) {
			continue
		}
		out = append(out, Object{Key: o.Key, Size: o.Size, ModTime: o.ModTime})
	}
	// A file store lists in directory-walk order, where "a/x" comes before
	// "a-b" although '-' sorts before '/'.
	slices.SortFunc(out, func(a, b Object) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// ListDirs returns the names of the "directories" directly under prefix (which
// should end in "/"), sorted. A directory is there while it holds an object.
func (s *Store) ListDirs(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := s.do(ctx, func(ctx context.Context) error {
		return s.relist(ctx, func() error {
			var err error
			out, err = s.listDirs(ctx, prefix)
			return err
		})
	})
	return out, err
}

func (s *Store) listDirs(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	it := s.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		if !o.IsDir {
			continue
		}
		if s.file {
			// A file store's directory may hold only writes under way.
			ok, err := s.holdsObject(ctx, o.Key)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(o.Key, prefix), "/"))
	}
	// Sorted by name: the backends sort "demo-2/" before "demo/".
	slices.Sort(out)
	return out, nil
}

// holdsObject reports whether some object's key starts with prefix.
func (s *Store) holdsObject(ctx context.Context, prefix string) (bool, error) {
	it := s.b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, s.wrap("list", prefix, err)
		}
		if !s.isTemp(o.Key) {
			return true, nil
		}
	}
}

// File is an object opened for random access with ranged reads, as Parquet and
// Arrow IPC file readers need. Close it when done.
//
// In a file store the file is held open and read with pread(2): reads cost
// no open, and they see the version that was there when it was opened, even
// once the object is replaced or deleted (Unchanged tells whether the file
// itself was written or truncated since). Other stores read the object as it
// is at each read (a deleted one gives ErrNotExist).
type File struct {
	s    *Store
	ctx  context.Context
	key  string
	size int64
	// f is the open file of a file store; r owns it. mtime is its
	// modification time when opened.
	f     *os.File
	r     *blob.Reader
	mtime time.Time
	// lease lends f's blocks from memory mappings; nil if it cannot.
	lease *leasedFile
}

// OpenFile opens an object for random access.
func (s *Store) OpenFile(ctx context.Context, key string) (*File, error) {
	if s.file {
		var f *os.File
		r, err := s.b.NewRangeReader(ctx, key, 0, 0, &blob.ReaderOptions{BeforeRead: func(as func(any) bool) error {
			as(&f)
			return nil
		}})
		if err != nil {
			return nil, s.wrap("read", key, err)
		}
		if f != nil {
			fi, err := f.Stat()
			if err != nil {
				_ = r.Close()
				return nil, s.wrap("read", key, err)
			}
			file := &File{s: s, ctx: ctx, key: key, size: fi.Size(), f: f, r: r, mtime: fi.ModTime()}
			file.lease = newLeasedFile(s.leases, f, file.Unchanged)
			return file, nil
		}
		_ = r.Close()
	}
	o, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	return &File{s: s, ctx: ctx, key: key, size: o.Size}, nil
}

// Close releases the file; reads after it fail.
func (f *File) Close() error {
	if f.r == nil {
		return nil
	}
	if f.lease != nil {
		f.lease.close()
	}
	err := f.r.Close()
	if errors.Is(err, os.ErrClosed) {
		return nil
	}
	return err
}

// Size is the object's size in bytes.
func (f *File) Size() int64 { return f.size }

// ReadAt reads len(p) bytes at off with one ranged read.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.f != nil {
		if off < 0 {
			return 0, fmt.Errorf("store: read %s at offset %d: negative offset", f.key, off)
		}
		n, err := f.f.ReadAt(p, off)
		if err != nil && err != io.EOF {
			return n, f.s.wrap("read", f.key, err)
		}
		return n, err
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if off+n > f.size {
		n = f.size - off
	}
	var got int
	err := f.s.do(f.ctx, func(ctx context.Context) error {
		r, err := f.s.b.NewRangeReader(ctx, f.key, off, n, nil)
		if err != nil {
			return err
		}
		defer r.Close()
		got, err = io.ReadFull(r, p[:n])
		return err
	})
	if err != nil {
		return got, f.s.wrap("read", f.key, err)
	}
	if got < len(p) {
		return got, io.EOF
	}
	return got, nil
}

// Unchanged checks that a file store's file has the size and modification
// time it had when opened, and returns an error wrapping ErrChanged if not:
// called after a read, it tells whether a write or truncate that began
// before the read's end changed the file. It returns nil for other stores.
func (f *File) Unchanged() error {
	if f.f == nil {
		return nil
	}
	fi, err := f.f.Stat()
	if err != nil {
		return f.s.wrap("read", f.key, err)
	}
	if fi.Size() != f.size || !fi.ModTime().Equal(f.mtime) {
		return f.s.wrap("read", f.key, fmt.Errorf("%w (%d bytes, modified %s, when opened %d bytes, modified %s)",
			ErrChanged, fi.Size(), fi.ModTime().UTC().Format(time.RFC3339Nano), f.size, f.mtime.UTC().Format(time.RFC3339Nano)))
	}
	return nil
}

// Map lends the bytes [off, off+n) of a file store's file from a read-only
// memory mapping, with a function that ends the loan; ok is false when the
// file is not mapped (another store, mmap=false, no lease: read it with
// ReadAt). The bytes must not be written, nor touched after release: their
// memory is unmapped. They stay the bytes the file held when opened: a
// process that writes or truncates the file meanwhile waits for the lease,
// and blocks lent when it asks keep their bytes in memory of their own.
// Calls share mappings of large windows of the file (each block's pages
// read in as it is lent): a caller maps whole reads (a record batch), not
// small ones, and reads them in the file's order.
func (f *File) Map(off, n int64) (b []byte, release func(), ok bool) {
	if f.lease == nil || off < 0 || n <= 0 || off > f.size-n {
		return nil, nil, false
	}
	return f.lease.mapBlock(off, n)
}

// Seek is not needed by readers that use ReadAt; it is provided so a File can be
// handed to readers that ask for an io.ReadSeeker only to learn the size.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekEnd:
		return f.size + offset, nil
	case io.SeekStart:
		return offset, nil
	}
	return 0, errors.New("store: File supports Seek from start or end only")
}

// Read is unsupported; use ReadAt.
func (f *File) Read([]byte) (int, error) {
	return 0, errors.New("store: File supports ReadAt only")
}
