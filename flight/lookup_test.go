package flight

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestLookupQueryPlace: a ?query goes with jobs/latest only; after a job ID,
// a job name or anything else it is refused as such (INVALID_ARGUMENT saying
// where a query goes), never as a job that does not exist, and the message
// quotes only a short prefix of what was asked.
func TestLookupQueryPlace(t *testing.T) {
	const id = "20261124T184501123Z-9f2c1a"
	long := strings.Repeat("A", 5000)
	for _, tc := range []struct {
		ticket string
		code   codes.Code
		want   string // in the message
	}{
		{"jobs/" + id + "?dataset=demo", codes.InvalidArgument, "goes with jobs/latest only"},
		{"jobs/" + id + "/part-00000?state=any", codes.InvalidArgument, "goes with jobs/latest only"},
		{"jobs/beta-weekly?dataset=demo", codes.InvalidArgument, "goes with jobs/latest only"},
		{"jobs/Bad-Name?dataset=demo", codes.InvalidArgument, "goes with jobs/latest only"},
		{"jobs/" + long + "?x=1", codes.InvalidArgument, "goes with jobs/latest only"},
		{"jobs/Bad-Name", codes.NotFound, "job names like"},
		{"jobs/latest?colour=red", codes.InvalidArgument, `unknown parameter "colour"`},
	} {
		_, err := parseTicket([]byte(tc.ticket))
		st := status.Convert(err)
		if st.Code() != tc.code || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("ticket %.60s: %v, want %v saying %q", tc.ticket, err, tc.code, tc.want)
		}
		if strings.Contains(st.Message(), strings.Repeat("A", 100)) {
			t.Errorf("ticket %.60s: the message quotes more than a short prefix: %.200s", tc.ticket, st.Message())
		}
	}
}
