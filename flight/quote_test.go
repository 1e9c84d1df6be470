package flight_test

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/pkg/api"
)

// TestLongValuesQuotedShort sends requests whose refused value or name is
// long (a number of 3,000 digits, an unknown field of 3,000 letters): each is
// INVALID_ARGUMENT, and its message quotes at most a short prefix of it, as
// every message does.
func TestLongValuesQuotedShort(t *testing.T) {
	e := newEnv(t, "")
	digits, letters := strings.Repeat("9", 3000), strings.Repeat("z", 3000)
	for _, tc := range []struct{ name, action, body, ticket, put string }{
		{name: "psd number", action: api.ActionPSD, body: `{"dataset": "demo", "fs": 250, "nperseg": ` + digits + `}`},
		{name: "psd fs", action: api.ActionPSD, body: `{"dataset": "demo", "fs": 1` + digits + `}`},
		{name: "psd unknown field", action: api.ActionPSD, body: `{"dataset": "demo", "fs": 250, "` + letters + `": 1}`},
		{name: "psd band name", action: api.ActionPSD, body: `{"dataset": "demo", "fs": 250, "bands": {"` + letters + `": [1]}}`},
		{name: "job-wait timeout", action: api.ActionJobWait, body: `{"job_id": "20261124T184501123Z-9f2c1a", "timeout_s": ` + digits + `}`},
		{name: "list-jobs limit", action: api.ActionListJobs, body: `{"limit": ` + digits + `}`},
		{name: "list-jobs unknown field", action: api.ActionListJobs, body: `{"` + letters + `": 1}`},
		{name: "ticket unknown field", ticket: `{"path": "datasets/demo", "` + letters + `": 1}`},
		{name: "DoPut command", put: `{"path": "datasets/x", "rows": ` + digits + `}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			switch {
			case tc.ticket != "":
				_, err = e.tryRead(tc.ticket)
			case tc.put != "":
				err = putCommand(e.client, tc.put)
			default:
				_, err = e.action(t, tc.action, tc.body)
			}
			st := status.Convert(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
			if msg := st.Message(); strings.Contains(msg, digits[:100]) || strings.Contains(msg, letters[:100]) {
				t.Errorf("the message quotes more than a short prefix of the input (%d bytes): %.300s", len(msg), msg)
			}
		})
	}
}

// putCommand starts a DoPut under a command descriptor, sends a schema and no
// batch, and returns the server's answer.
func putCommand(c aflight.Client, cmd string) error {
	stream, err := c.DoPut(context.Background())
	if err != nil {
		return err
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)}}, nil)
	w := aflight.NewRecordWriter(stream, ipc.WithSchema(schema))
	w.SetFlightDescriptor(&aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(cmd)})
	_ = w.Close()
	_ = stream.CloseSend()
	for {
		if _, err := stream.Recv(); err != nil {
			return err
		}
	}
}
