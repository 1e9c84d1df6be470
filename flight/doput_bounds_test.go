package flight

import (
	"strings"
	"testing"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestPutCommandBoundsSaid: a DoPut command's shard options out of range are
// refused with a message that gives the range, so that the client can tell
// what to change (shard_mb 1e12 is positive, and still too large).
func TestPutCommandBoundsSaid(t *testing.T) {
	for _, tc := range []struct{ cmd, want string }{
		{`{"path": "datasets/x", "shard_mb": 1e12}`, "1048576"},
		{`{"path": "datasets/x", "shard_mb": 0}`, "1048576"},
		{`{"path": "datasets/x", "shard_mb": -1}`, "1048576"},
		{`{"path": "datasets/x", "rows": 3, "shards": 100001}`, "[1, 100000]"},
	} {
		_, _, err := parsePutDescriptor(&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(tc.cmd)})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument giving %s", tc.cmd, err, tc.want)
		}
	}
}
