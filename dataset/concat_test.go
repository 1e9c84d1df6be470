package dataset

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/store"
)

// TestConcatRefusesAFileOfAnotherSchema: a stored file whose schema is not the
// stream's is damage in the store (a part or shard replaced by hand), not a
// bad request: the error wraps ErrDamaged, names the file and the first
// difference, and stays short whatever the schemas' size.
func TestConcatRefusesAFileOfAnotherSchema(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const good, odd = "jobs/j/parts/part-00000.arrow", "jobs/j/parts/part-00001.arrow"
	data := arrowBytes(t, 4, 2, 8)
	for _, key := range []string{good, odd} {
		if err := st.WriteAll(ctx, key, data); err != nil {
			t.Fatal(err)
		}
	}
	fields := DemoSchema.Fields()
	retyped := append([]arrow.Field(nil), fields...)
	retyped[5].Type = arrow.ListOf(arrow.PrimitiveTypes.Float64)
	renamed := append([]arrow.Field(nil), fields...)
	renamed[2].Name = "electrode"
	strict := append([]arrow.Field(nil), fields...)
	strict[0].Nullable = !strict[0].Nullable
	for _, tc := range []struct {
		name   string
		stream *arrow.Schema // what the first file is read as: the stream's schema
		want   string        // in the error
	}{
		{"a column's type", arrow.NewSchema(retyped, nil), `"samples"`},
		{"a column's name", arrow.NewSchema(renamed, nil), `"channel"`},
		{"a column's nullability", arrow.NewSchema(strict, nil), "nullability"},
		{"one more column", arrow.NewSchema(append(append([]arrow.Field(nil), fields...), arrow.Field{Name: "x", Type: arrow.PrimitiveTypes.Int64}), nil), "6 columns"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The stream's schema is tc.stream; both files hold DemoSchema,
			// so the first file read already differs.
			r := Concat(ctx, st, tc.stream, []File{{Key: good, Format: FormatArrow}, {Key: odd, Format: FormatArrow}}, memory.DefaultAllocator)
			defer r.Release()
			for r.Next() {
			}
			err := r.Err()
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("err = %v, want one wrapping ErrDamaged", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, good) || !strings.Contains(msg, tc.want) {
				t.Errorf("err = %q, want it to name %s and say %s", msg, good, tc.want)
			}
			if len(msg) > 300 || strings.Contains(msg, "fields:") {
				t.Errorf("err is %d bytes, dumping schemas: %q", len(msg), msg)
			}
		})
	}
}
