package batch

import (
	"encoding/json"
	"maps"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Schema metadata keys under which a job's result carries its provenance. Every
// result schema a job serves (GetFlightInfo, GetSchema, DoGet of the merged
// result or of a part) has them, so a file written from a result keeps them.
const (
	MetaJobID          = "flightbatch.job_id"
	MetaFunction       = "flightbatch.function"
	MetaParams         = "flightbatch.params" // JSON, as recorded (defaults filled in)
	MetaDataset        = "flightbatch.dataset"
	MetaDatasetVersion = "flightbatch.dataset_version"
	MetaVersion        = "flightbatch.version" // of the server that created the job
	// MetaUnits is a JSON object: result column name → physical unit. A unit
	// written with "[unit]" refers to each row's value of the column "unit".
	MetaUnits = "flightbatch.units"
)

// UnitKey is the field metadata key by which a column declares its physical
// unit (e.g. {"unit": "uV"} on a signal column).
const UnitKey = "unit"

// UnitColumn is the name of a per-row unit column (utf8), as recording datasets
// have: a unit written "[unit]" stands for each row's value of it.
const UnitColumn = "unit"

// UnitFunction is implemented by a Function that knows the physical units of
// its result columns.
type UnitFunction interface {
	// ResultUnits returns the unit of each result column it knows, given the
	// params Prepare recorded and the input schema; nil if it knows none.
	ResultUnits(params json.RawMessage, in *arrow.Schema) map[string]string
}

// resultUnits asks fn, if it knows units, for those of its result.
func resultUnits(fn Function, params json.RawMessage, in *arrow.Schema) map[string]string {
	uf, ok := fn.(UnitFunction)
	if !ok || in == nil {
		return nil
	}
	u := uf.ResultUnits(params, in)
	if len(u) == 0 {
		return nil
	}
	return u
}

// SignalUnit is the unit of a signal column of in: its field's UnitKey
// metadata, or "[unit]" when in has a per-row UnitColumn instead; "" if
// neither declares one.
func SignalUnit(in *arrow.Schema, column string) string {
	if idx := in.FieldIndices(column); len(idx) > 0 {
		if u, ok := fieldUnit(in.Field(idx[0])); ok {
			return u
		}
	}
	if idx := in.FieldIndices(UnitColumn); len(idx) > 0 {
		switch in.Field(idx[0]).Type.ID() {
		case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
			return "[" + UnitColumn + "]"
		}
	}
	return ""
}

func fieldUnit(f arrow.Field) (string, bool) {
	i := f.Metadata.FindKey(UnitKey)
	if i < 0 || strings.TrimSpace(f.Metadata.Values()[i]) == "" {
		return "", false
	}
	return strings.TrimSpace(f.Metadata.Values()[i]), true
}

// WithProvenance returns s with the job's provenance added to its schema
// metadata (other metadata is kept). Units are those the manifest recorded,
// over the UnitKey field metadata of s's columns.
func (m *Manifest) WithProvenance(s *arrow.Schema) *arrow.Schema {
	if s == nil {
		return nil
	}
	units := map[string]string{}
	for _, f := range s.Fields() {
		if u, ok := fieldUnit(f); ok {
			units[f.Name] = u
		}
	}
	maps.Copy(units, m.Units)
	kv := map[string]string{}
	md := s.Metadata()
	for i, k := range md.Keys() {
		kv[k] = md.Values()[i]
	}
	kv[MetaJobID] = m.JobID
	kv[MetaFunction] = m.Function
	kv[MetaParams] = string(m.Params)
	kv[MetaDataset] = m.Dataset
	kv[MetaDatasetVersion] = m.DatasetVersion
	kv[MetaVersion] = m.Version
	if len(units) > 0 {
		b, _ := json.Marshal(units) // a map of strings always marshals
		kv[MetaUnits] = string(b)
	}
	fields := s.Fields()
	meta := arrow.MetadataFrom(kv)
	return arrow.NewSchema(fields, &meta)
}

// provenanceReader serves a result's batches under its schema with provenance.
// Batches keep their own schema: the two differ only in schema-level metadata,
// which Arrow's schema equality (and so the IPC writer) ignores.
type provenanceReader struct {
	array.RecordReader
	schema *arrow.Schema
}

func (r *provenanceReader) Schema() *arrow.Schema { return r.schema }

// Unwrap returns the reader of the stored parts (see dataset.Stored): only
// the schema's metadata differs, which record batch messages do not carry.
func (r *provenanceReader) Unwrap() array.RecordReader { return r.RecordReader }
