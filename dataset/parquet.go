package dataset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetBatchRows bounds the rows of a batch read from Parquet: a record holds a
// whole signal segment, so batches of a few dozen rows stay near a megabyte.
const parquetBatchRows = 32

// parquetBufferBytes is the size of each ranged read of a column chunk. Without
// a buffered stream, the Parquet reader would read a whole column chunk (all of
// a row group's signals, easily hundreds of megabytes) into memory at once.
const parquetBufferBytes = 1 << 20

// parquetProps are the reader properties of every Parquet shard: column chunks
// are streamed through ranged reads of parquetBufferBytes.
func parquetProps(mem memory.Allocator) *parquet.ReaderProperties {
	p := parquet.NewReaderProperties(mem)
	p.BufferedStreamEnabled = true
	p.BufferSize = parquetBufferBytes
	return p
}

// openParquet reads a Parquet file row group by row group, page by page,
// through ranged reads: memory holds a batch of parquetBatchRows rows and one
// read buffer per column, however large the row groups.
func openParquet(ctx context.Context, f parquet.ReaderAtSeeker, key string, mem memory.Allocator) (array.RecordReader, error) {
	pf, err := file.NewParquetReader(f, file.WithReadProps(parquetProps(mem)))
	if err != nil {
		return nil, fmt.Errorf("dataset: read Parquet file %s: %v: %w", key, err, ErrDamaged)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: parquetBatchRows, Parallel: false}, mem)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("dataset: read Parquet file %s: %v: %w", key, err, ErrDamaged)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("dataset: read Parquet file %s: %v: %w", key, err, ErrDamaged)
	}
	return &closingReader{RecordReader: rr, close: pf.Close}, nil
}

// parquetRows reads a Parquet file's row count from its footer.
func (c *Catalog) parquetRows(ctx context.Context, sh Shard) (int64, error) {
	f, err := c.st.OpenFile(ctx, sh.Key)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var rows int64
	err = Protect("dataset: "+sh.Key, ErrDamaged, func() error {
		pf, err := file.NewParquetReader(f, file.WithReadProps(parquetProps(memory.DefaultAllocator)))
		if err != nil {
			return err
		}
		defer pf.Close()
		rows = pf.NumRows()
		return nil
	})
	return rows, err
}

// closingReader closes the underlying file when the reader is released.
type closingReader struct {
	array.RecordReader
	close func() error
	refs  int
}

func (r *closingReader) Retain() { r.refs++; r.RecordReader.Retain() }

func (r *closingReader) Release() {
	r.RecordReader.Release()
	if r.refs == 0 {
		_ = r.close()
		return
	}
	r.refs--
}
