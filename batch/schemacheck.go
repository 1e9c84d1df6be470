package batch

import (
	"context"
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/dataset"
)

// maxSchemaReports bounds the shards a schema mismatch message details.
const maxSchemaReports = 5

// partSchemas checks that the parts of a job whose function declares no result
// schema share one schema, as the merged result needs. It returns the first
// shard's schema, encoded for the manifest, or a message naming the shards and
// fields that differ.
func (mg *Manager) partSchemas(ctx context.Context, m *Manifest) (encoded, problem string) {
	if len(m.Shards) == 0 {
		return "", ""
	}
	var first *arrow.Schema
	var diffs []string
	var differing []string
	for _, s := range m.Shards {
		r, err := dataset.OpenFile(ctx, mg.st, PartKey(m.JobID, s.Name), dataset.FormatArrow, mg.alloc)
		if err != nil {
			return "", fmt.Sprintf("read the result part of shard %s: %v", s.Name, err)
		}
		schema := r.Schema()
		r.Release()
		if first == nil {
			first = schema
			continue
		}
		if schema.Equal(first) {
			continue
		}
		differing = append(differing, s.Name)
		if len(diffs) < maxSchemaReports {
			diffs = append(diffs, fmt.Sprintf("shard %s: %s", s.Name, strings.Join(schemaDiff(first, schema), ", ")))
		}
	}
	if len(differing) > 0 {
		msg := fmt.Sprintf("function %s returned results that do not share one schema: %d shard(s) (%s) differ from the first shard %s: %s",
			m.Function, len(differing), strings.Join(differing, ", "), m.Shards[0].Name, strings.Join(diffs, "; "))
		if len(differing) > len(diffs) {
			msg += fmt.Sprintf("; and %d more", len(differing)-len(diffs))
		}
		return "", msg
	}
	enc, err := encodeSchema(first)
	if err != nil {
		return "", fmt.Sprintf("encode the result schema: %v", err)
	}
	return enc, ""
}

// schemaDiff describes how schema b differs from schema a, field by field.
func schemaDiff(a, b *arrow.Schema) []string {
	var out []string
	for _, fa := range a.Fields() {
		idx := b.FieldIndices(fa.Name)
		if len(idx) == 0 {
			out = append(out, fmt.Sprintf("field %q (%s) is missing", fa.Name, fa.Type))
			continue
		}
		fb := b.Field(idx[0])
		switch {
		case !arrow.TypeEqual(fa.Type, fb.Type, arrow.CheckMetadata()):
			out = append(out, fmt.Sprintf("field %q is %s, not %s", fa.Name, fb.Type, fa.Type))
		case fa.Nullable != fb.Nullable:
			out = append(out, fmt.Sprintf("field %q has nullable=%v, not %v", fa.Name, fb.Nullable, fa.Nullable))
		case !fa.Metadata.Equal(fb.Metadata):
			out = append(out, fmt.Sprintf("field %q has other metadata", fa.Name))
		}
	}
	for _, fb := range b.Fields() {
		if len(a.FieldIndices(fb.Name)) == 0 {
			out = append(out, fmt.Sprintf("field %q (%s) is extra", fb.Name, fb.Type))
		}
	}
	if len(out) == 0 {
		out = append(out, fmt.Sprintf("the fields are in another order (%s, not %s)", columnNames(b), columnNames(a)))
	}
	return out
}

func columnNames(s *arrow.Schema) string {
	names := make([]string, len(s.Fields()))
	for i, f := range s.Fields() {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}
