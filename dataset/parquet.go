package dataset

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/flightbatch/flightbatch/store"
)

// parquetBatchRows bounds the rows of a batch read from Parquet: a record holds a
// whole signal segment, so batches of a few dozen rows stay near a megabyte.
const parquetBatchRows = 32

// openParquet reads a Parquet file row group by row group through ranged reads.
func openParquet(ctx context.Context, f *store.File, key string, mem memory.Allocator) (array.RecordReader, error) {
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return nil, fmt.Errorf("dataset: read Parquet file %s: %v: %w", key, err, ErrInvalid)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: parquetBatchRows}, mem)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("dataset: read Parquet file %s: %v: %w", key, err, ErrInvalid)
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		pf.Close()
		return nil, fmt.Errorf("dataset: read Parquet file %s: %v: %w", key, err, ErrInvalid)
	}
	return &closingReader{RecordReader: rr, close: pf.Close}, nil
}

// parquetRows reads a Parquet file's row count from its footer.
func (c *Catalog) parquetRows(ctx context.Context, sh Shard) (int64, error) {
	f, err := c.st.OpenFile(ctx, sh.Key)
	if err != nil {
		return 0, err
	}
	pf, err := file.NewParquetReader(f)
	if err != nil {
		return 0, err
	}
	defer pf.Close()
	return pf.NumRows(), nil
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
