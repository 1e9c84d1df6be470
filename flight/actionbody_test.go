package flight_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/internal/testserver"
)

// TestMalformedActionBodies sends every action the server lists (its own
// and each function's) bodies that are not the JSON object it expects:
// each is INVALID_ARGUMENT, with a message that says what to send and
// repeats no more than a short prefix of the body, never INTERNAL, UNKNOWN
// or a crash; and none changes the job history.
func TestMalformedActionBodies(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4})
	c := dial(t, srv.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := c.ListActions(ctx, &aflight.Empty{})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for {
		a, err := s.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, a.Type)
	}
	long := strings.Repeat("y", 200)
	bodies := []struct{ name, body string }{
		{"not JSON", "not json " + long},
		{"truncated", `{"dataset": "demo", "job_id": "` + long},
		{"an array", `[1, 2, 3]`},
		{"a string", `"` + long + `"`},
		{"a number", `12345`},
		{"true", `true`},
		{"two values", `{} {}`},
		{"not UTF-8", "{\"dataset\": \"\xff\xfe\"}"},
		{"deep", strings.Repeat("[", 5000) + strings.Repeat("]", 5000)},
		{"wrong field types", `{"dataset": 5, "job_id": 5, "name": 5, "prefix": 5, "state": 5, "limit": "x", "labels": 5, "function": 5, "reuse": "yes", "timeout_s": "x", "force": "x"}`},
	}
	list := func() string {
		st, err := c.DoAction(ctx, &aflight.Action{Type: "list-jobs", Body: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return string(r.Body)
	}
	before := list()
	for _, typ := range types {
		for _, b := range bodies {
			t.Run(typ+"/"+b.name, func(t *testing.T) {
				st, err := c.DoAction(ctx, &aflight.Action{Type: typ, Body: []byte(b.body)})
				if err == nil {
					_, err = st.Recv()
				}
				sc := status.Convert(err)
				if sc.Code() != codes.InvalidArgument {
					t.Fatalf("got %v, want InvalidArgument", err)
				}
				msg := sc.Message()
				if len(msg) < 20 {
					t.Errorf("message %q says too little", msg)
				}
				if strings.Contains(msg, strings.Repeat("y", 40)) {
					t.Errorf("message %q repeats more than a short prefix of the body", msg)
				}
			})
		}
	}
	if after := list(); after != before {
		t.Errorf("refused requests changed the job history:\nbefore %s\nafter  %s", before, after)
	}
}
