package flight

import (
	"bytes"
	"encoding/json"
	"testing"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	flightgen "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
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
