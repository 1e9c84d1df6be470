package flight

import (
	"fmt"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/dataset"
)

// undecodable is a reader whose current batch cannot be decoded.
type undecodable struct {
	array.RecordReader
	err error
}

func (u undecodable) RecordBatch() arrow.RecordBatch { return nil }
func (u undecodable) Err() error                     { return u.err }

// TestCurrentUndecodable: a batch that a reader fails to decode on demand
// ends the stream with a status that says so, never a nil batch to send.
func TestCurrentUndecodable(t *testing.T) {
	for _, c := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("dataset: part-00000.arrow is damaged: record batch 3: bad: %w", dataset.ErrDamaged), codes.DataLoss},
		{nil, codes.Internal}, // no reason given: still an error
	} {
		rec, err := current(undecodable{err: c.err})
		if rec != nil || err == nil {
			t.Fatalf("current = %v, %v; want an error", rec, err)
		}
		if got := status.Code(err); got != c.code {
			t.Errorf("%v: code %s, want %s", c.err, got, c.code)
		}
	}
}
