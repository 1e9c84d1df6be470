package flight

import (
	"log/slog"
	"testing"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
)

func TestAuditTargets(t *testing.T) {
	const id = "20261124T184501123Z-9f2c1a"
	str := func(attrs []slog.Attr) string {
		out := ""
		for _, a := range attrs {
			out += a.Key + "=" + a.Value.String() + " "
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		attrs []slog.Attr
		want  string
	}{
		{"dataset", descriptorTarget(&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "demo"}}), "dataset=demo "},
		{"job shard", descriptorTarget(&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id, "part-00001"}}), "job=" + id + " shard=part-00001 "},
		{"poll continuation", descriptorTarget(&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", id, "poll", "tok"}}), "job=" + id + " "},
		{"job request", descriptorTarget(&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(`{"dataset": "demo", "fs": 250}`)}), "action=psd dataset=demo "},
		{"action", actionTarget("cancel-job", []byte(`{"job_id": "`+id+`"}`)), "action=cancel-job job=" + id + " "},
		{"run", actionTarget("run", []byte(`{"function": "peaks", "dataset": "jobs/`+id+`"}`)), "action=run dataset=jobs/" + id + " function=peaks "},
		{"not JSON", actionTarget("psd", []byte(`{`)), "action=psd "},
		{"garbage path", descriptorTarget(&aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"x"}}), ""},
	} {
		if got := str(tc.attrs); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
