package flight

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	flightgen "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// checkTarget checks what a parser accepted: a known kind, a valid name, a
// path that parses back to the same target, and an error that is a gRPC
// status of the documented codes.
func checkTarget(t *testing.T, in string, tg target, err error) {
	t.Helper()
	if err != nil {
		st, ok := status.FromError(err)
		if !ok || (st.Code() != codes.InvalidArgument && st.Code() != codes.NotFound && st.Code() != codes.Unimplemented) {
			t.Fatalf("%q: error %v is not InvalidArgument, NotFound or Unimplemented", in, err)
		}
		return
	}
	switch tg.kind {
	case "datasets":
		if dataset.ValidName(tg.name) != nil {
			t.Fatalf("%q: accepted dataset name %q", in, tg.name)
		}
	case "jobs":
		switch {
		case tg.lookup != nil:
			if tg.name != "latest" && batch.ValidJobName(tg.name) != nil {
				t.Fatalf("%q: accepted job lookup %q", in, tg.name)
			}
			if tg.query != "" && tg.name != "latest" {
				t.Fatalf("%q: accepted a query on jobs/%s", in, tg.name)
			}
		case !batch.ValidJobID(tg.name):
			t.Fatalf("%q: accepted job ID %q", in, tg.name)
		}
	default:
		t.Fatalf("%q: accepted kind %q", in, tg.kind)
	}
	back, err := parsePath([]string{tg.path()})
	if err != nil || back.kind != tg.kind || back.name != tg.name || back.shard != tg.shard || back.query != tg.query {
		t.Fatalf("%q: path %q parses back to %+v, %v", in, tg.path(), back, err)
	}
	switch tg.compression {
	case "", "none", "zstd", "lz4":
	default:
		t.Fatalf("%q: accepted compression %q", in, tg.compression)
	}
}

func FuzzParseTicket(f *testing.F) {
	for _, s := range []string{
		"datasets/demo", "datasets/demo/part-00001", "jobs/20261124T184501123Z-9f2c1a",
		"jobs/20261124T184501123Z-9f2c1a/part-00001", " datasets/demo ", "/datasets/demo/",
		`{"path": "datasets/demo", "columns": ["channel", "samples"]}`,
		`{"path": "datasets/demo/part-00000", "compression": "zstd"}`,
		`{"path": "datasets/demo"} {}`, `{"path": "datasets/demo"}}`, `{"path": 1}`, `{`,
		"datasets/../etc", "datasets//x", "datasets/demo//", "\x00", "datasets/Demo",
		"jobs/beta-weekly", "jobs/latest?dataset=demo&label=cohort=pd", "jobs/latest/shards?state=any",
		"jobs/latest?label=%zz", "jobs/name?x=1", "datasets/demo?x", "jobs/latest?",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tg, err := parseTicket(b)
		checkTarget(t, string(b), tg, err)
		if trimmed := bytes.TrimSpace(b); err == nil && len(trimmed) > 0 && trimmed[0] == '{' && !json.Valid(trimmed) {
			t.Fatalf("%q: accepted a ticket that is not one JSON value", b)
		}
	})
}

func FuzzParseDescriptor(f *testing.F) {
	f.Add(int32(aflight.DescriptorPATH), "datasets", "demo", "", []byte(nil))
	f.Add(int32(aflight.DescriptorPATH), "jobs", "20261124T184501123Z-9f2c1a", "shards", []byte(nil))
	f.Add(int32(aflight.DescriptorPATH), "datasets/demo", "", "", []byte(nil))
	f.Add(int32(aflight.DescriptorCMD), "", "", "", []byte("datasets/demo"))
	f.Add(int32(aflight.DescriptorCMD), "", "", "", []byte(`{"path":"datasets/demo"}`))
	f.Add(int32(7), "datasets", "demo", "", []byte(nil))
	f.Fuzz(func(t *testing.T, typ int32, a, b, c string, cmd []byte) {
		d := &aflight.FlightDescriptor{Type: descType(typ), Cmd: cmd}
		for _, s := range []string{a, b, c} {
			if s != "" {
				d.Path = append(d.Path, s)
			}
		}
		tg, err := parseDescriptor(d)
		checkTarget(t, d.String(), tg, err)
		if err == nil && (tg.columns != nil || tg.compression != "") {
			t.Fatalf("%v: a descriptor set ticket options", d)
		}
	})
}

// descType converts a fuzzed number to a descriptor type, known or not.
func descType(n int32) flightgen.FlightDescriptor_DescriptorType {
	return flightgen.FlightDescriptor_DescriptorType(n)
}

func FuzzParsePutDescriptor(f *testing.F) {
	for _, s := range []string{
		`{"path": "datasets/up", "rows": 10}`, `{"path": "datasets/up"}`, `{"path": "jobs/x"}`,
		`{"path": "datasets/up", "rows": -1}`, `{"path": "datasets/up", "rows": 1.5}`,
		`{"path": "datasets/up"} x`, "datasets/up", "datasets/up/part-00000", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, cmd []byte) {
		d := &aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: cmd}
		tg, pc, err := parsePutDescriptor(d)
		checkTarget(t, string(cmd), tg, err)
		if err != nil {
			return
		}
		if tg.kind != "datasets" || tg.shard != "" {
			t.Fatalf("%q: DoPut accepted %q", cmd, tg.path())
		}
		if pc.Rows != nil && *pc.Rows < 0 {
			t.Fatalf("%q: accepted rows %d", cmd, *pc.Rows)
		}
		if pc.Shards != nil && (pc.Rows == nil || *pc.Shards < 1) {
			t.Fatalf("%q: accepted shards %d without rows or below 1", cmd, *pc.Shards)
		}
		if pc.ShardMB != nil && !(*pc.ShardMB > 0) {
			t.Fatalf("%q: accepted shard_mb %v", cmd, *pc.ShardMB)
		}
	})
}

// putStream replays FlightData messages as a DoPut stream.
type putStream struct{ msgs []*aflight.FlightData }

func (s *putStream) Recv() (*aflight.FlightData, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

// captured collects the FlightData a writer sends.
type captured struct{ msgs []*aflight.FlightData }

func (c *captured) Send(fd *aflight.FlightData) error { c.msgs = append(c.msgs, fd); return nil }

// uploadMessages are the schema and batch messages of an upload of
// (list<float32>, float64), as a client sends them.
func uploadMessages(t testing.TB) (schemaHeader, batchHeader, batchBody []byte) {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
		{Name: "fs", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	lb := b.Field(0).(*array.ListBuilder)
	for i := 0; i < 4; i++ {
		lb.Append(true)
		lb.ValueBuilder().(*array.Float32Builder).AppendValues([]float32{1, 2, 3}, nil)
		b.Field(1).(*array.Float64Builder).Append(250)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	var c captured
	w := aflight.NewRecordWriter(&c, ipc.WithSchema(schema))
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(c.msgs) != 2 {
		t.Fatalf("%d messages, want a schema and a batch", len(c.msgs))
	}
	return c.msgs[0].DataHeader, c.msgs[1].DataHeader, c.msgs[1].DataBody
}

// FuzzDoPut feeds arbitrary schema and batch messages to DoPut's reader, and
// writes what it accepts as DoPut does: nothing may panic, every batch
// accepted must be written without error, and every refusal must be
// dataset.ErrInvalid (InvalidArgument at the edge).
func FuzzDoPut(f *testing.F) {
	sh, bh, body := uploadMessages(f)
	f.Add(sh, bh, body)
	f.Add(sh, bh, bytes.Repeat([]byte{0xff}, len(body))) // a body of garbage: once a panic in the IPC writer
	f.Add(sh, bh, body[:len(body)/2])
	f.Add(sh, []byte(nil), []byte(nil))
	f.Add(bh, sh, body)
	f.Fuzz(func(t *testing.T, schemaHeader, batchHeader, batchBody []byte) {
		desc := &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "fuzz"}}
		stream := &putStream{msgs: []*aflight.FlightData{
			{FlightDescriptor: desc, DataHeader: schemaHeader},
			{DataHeader: batchHeader, DataBody: batchBody},
		}}
		rdr, err := openUpload(stream, memory.DefaultAllocator)
		if err != nil {
			return
		}
		defer rdr.Release()
		var out bytes.Buffer
		fw, err := ipc.NewFileWriter(&out, ipc.WithSchema(rdr.Schema()))
		if err != nil {
			t.Fatalf("schema %v accepted but not writable: %v", rdr.Schema(), err)
		}
		co := dataset.NewCoalescer(1<<20, memory.DefaultAllocator, fw.Write)
		defer co.Release()
		for i := 0; ; i++ {
			rec, err := nextUpload(rdr, i)
			if err != nil {
				if _, ok := status.FromError(err); !ok && !errors.Is(err, dataset.ErrInvalid) {
					t.Fatalf("batch %d refused with %v, not ErrInvalid", i, err)
				}
				return
			}
			if rec == nil {
				break
			}
			if err := co.Add(rec); err != nil {
				t.Fatalf("batch %d accepted but not writable: %v", i, err)
			}
		}
		if err := co.Flush(); err != nil {
			t.Fatalf("accepted batches not writable: %v", err)
		}
		if err := fw.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzActionBody: whatever an action's body, the bounds and the decoders of
// the action edge answer nil or InvalidArgument with a message of bounded
// length, and never panic.
func FuzzActionBody(f *testing.F) {
	for _, s := range []string{`{}`, `{"job_id": "20261124T184501123Z-9f2c1a"}`, `[1]`, "{\"dataset\": \"\xff\"}", `{"labels": {"a": 1}}`,
		`{} {}`, `{"state": ["RUNNING"], "since": "2026-11-24T18:45:00Z", "limit": 3}`, `null`, `{"dataset": "demo", "reuse": "yes"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		check := func(what string, err error) {
			t.Helper()
			if err == nil {
				return
			}
			st, ok := status.FromError(err)
			if !ok || st.Code() != codes.InvalidArgument {
				t.Fatalf("%s of %q: %v, want InvalidArgument", what, body, err)
			}
			if len(st.Message()) > 1024 {
				t.Fatalf("%s of %q: a message of %d bytes", what, body, len(st.Message()))
			}
		}
		err := checkJSONBounds("the body", body, MaxActionBodyBytes)
		check("checkJSONBounds", err)
		if err != nil {
			return
		}
		var ref api.JobRef
		check("decodeStrict", decodeStrict(api.ActionJobStatus, body, &ref))
		var req api.ListJobsRequest
		if err := decodeStrict(api.ActionListJobs, body, &req); err != nil {
			check("decodeStrict", err)
		} else {
			_, err := listQuery(req)
			check("listQuery", err)
		}
		fields, err := splitObject("psd", body)
		check("splitObject", err)
		if err != nil {
			return
		}
		_, err = takeString("psd", fields, "dataset")
		check("takeString", err)
		_, err = takeBool("psd", fields, "reuse")
		check("takeBool", err)
		_, err = takeLabels("psd", fields)
		check("takeLabels", err)
	})
}
