package flight_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
)

const (
	readToken   = "read-secret-1"
	submitToken = "submit-secret-2"
)

func testAuth(t *testing.T) *flight.Auth {
	t.Helper()
	a, err := flight.NewAuth([]flight.Token{
		{Name: "alice", SHA256: sha256.Sum256([]byte(readToken)), Role: flight.RoleRead},
		{Name: "bob", SHA256: sha256.Sum256([]byte(submitToken)), Role: flight.RoleSubmit},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// withHeader returns ctx sending the authorization header value v ("" sends none).
func withHeader(v string) context.Context {
	ctx := context.Background()
	if v == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", v)
}

// drain reads a stream to its end.
func drain[T any](recv func() (T, error)) error {
	for {
		if _, err := recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

func TestAuth(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{Shards: 2, Records: 8, Auth: testAuth(t)})
	c := dial(t, srv.Addr)

	// A finished job, submitted with the submit token, for the read calls.
	var sub api.SubmitResult
	if err := action(withHeader("Bearer "+submitToken), c, api.ActionPSD, map[string]any{"dataset": "demo", "fs": 250}, &sub); err != nil {
		t.Fatalf("psd with the submit token: %v", err)
	}
	var st api.JobStatus
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := action(withHeader("Bearer "+readToken), c, api.ActionJobStatus, api.JobRef{JobID: sub.JobID}, &st); err != nil {
			t.Fatalf("job-status with the read token: %v", err)
		}
		if st.State == "SUCCEEDED" || time.Now().After(deadline) {
			break
		}
	}
	if st.State != "SUCCEEDED" {
		t.Fatalf("job %s ended %s", sub.JobID, st.State)
	}
	if st.SubmittedBy != "bob" {
		t.Errorf("job-status submitted_by = %q, want bob", st.SubmittedBy)
	}

	schema := arrow.NewSchema([]arrow.Field{{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)}}, nil)
	b := array.NewListBuilder(memory.DefaultAllocator, arrow.PrimitiveTypes.Float64)
	for i := 0; i < 3; i++ {
		b.Append(true)
		b.ValueBuilder().(*array.Float64Builder).AppendValues([]float64{1, 2, 3}, nil)
	}
	col := b.NewArray()
	defer col.Release()
	rec := array.NewRecordBatch(schema, []arrow.Array{col}, 3)
	defer rec.Release()

	jobDesc := &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"jobs", sub.JobID}}
	dsDesc := &aflight.FlightDescriptor{Type: aflight.DescriptorPATH, Path: []string{"datasets", "demo"}}
	doAction := func(typ string, body any) func(ctx context.Context, caller string) error {
		return func(ctx context.Context, _ string) error { return action(ctx, c, typ, body, nil) }
	}
	calls := []struct {
		name string
		need flight.Role
		call func(ctx context.Context, caller string) error
	}{
		{"ListFlights", flight.RoleRead, func(ctx context.Context, _ string) error {
			s, err := c.ListFlights(ctx, &aflight.Criteria{})
			if err != nil {
				return err
			}
			return drain(s.Recv)
		}},
		{"GetFlightInfo", flight.RoleRead, func(ctx context.Context, _ string) error {
			_, err := c.GetFlightInfo(ctx, jobDesc)
			return err
		}},
		{"GetSchema", flight.RoleRead, func(ctx context.Context, _ string) error {
			_, err := c.GetSchema(ctx, dsDesc)
			return err
		}},
		{"DoGet", flight.RoleRead, func(ctx context.Context, _ string) error {
			s, err := c.DoGet(ctx, &aflight.Ticket{Ticket: []byte("jobs/" + sub.JobID)})
			if err != nil {
				return err
			}
			return drain(s.Recv)
		}},
		{"ListActions", flight.RoleRead, func(ctx context.Context, _ string) error {
			s, err := c.ListActions(ctx, &aflight.Empty{})
			if err != nil {
				return err
			}
			return drain(s.Recv)
		}},
		{"PollFlightInfo job", flight.RoleRead, func(ctx context.Context, _ string) error {
			_, err := c.PollFlightInfo(ctx, jobDesc)
			return err
		}},
		{"job-status", flight.RoleRead, doAction(api.ActionJobStatus, api.JobRef{JobID: sub.JobID})},
		{"job-wait", flight.RoleRead, doAction(api.ActionJobWait, map[string]any{"job_id": sub.JobID, "timeout_s": 0})},
		{"list-jobs", flight.RoleRead, doAction(api.ActionListJobs, struct{}{})},
		{"list-functions", flight.RoleRead, doAction(api.ActionListFunctions, struct{}{})},
		{"psd", flight.RoleSubmit, doAction(api.ActionPSD, map[string]any{"dataset": "demo", "fs": 250})},
		{"run", flight.RoleSubmit, doAction(api.ActionRun, map[string]any{"function": "psd", "dataset": "demo", "params": map[string]any{"fs": 250}})},
		{"cancel-job", flight.RoleSubmit, doAction(api.ActionCancelJob, api.JobRef{JobID: sub.JobID})},
		{"delete-job", flight.RoleSubmit, func(ctx context.Context, _ string) error {
			// A finished job of its own for each caller, made past the Flight edge.
			m, err := srv.Jobs.Submit(context.Background(), batch.SubmitRequest{Function: "psd", Dataset: "demo", Params: []byte(`{"fs": 250}`)})
			if err != nil {
				return err
			}
			for deadline := time.Now().Add(30 * time.Second); !m.State.Terminal() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				m, _ = srv.Jobs.Status(m.JobID)
			}
			return action(ctx, c, api.ActionDeleteJob, api.DeleteJobRequest{JobID: m.JobID}, nil)
		}},
		{"PollFlightInfo command", flight.RoleSubmit, func(ctx context.Context, _ string) error {
			_, err := c.PollFlightInfo(ctx, &aflight.FlightDescriptor{Type: aflight.DescriptorCMD, Cmd: []byte(`{"dataset": "demo", "fs": 250}`)})
			return err
		}},
		{"DoPut", flight.RoleSubmit, func(ctx context.Context, caller string) error {
			_, err := put(ctx, c, "up-"+caller, schema, rec)
			return err
		}},
	}
	callers := []struct {
		name   string
		header string
		role   flight.Role // 0: not authenticated
	}{
		{"no token", "", 0},
		{"wrong token", "Bearer not-a-token", 0},
		{"not bearer", "Basic " + submitToken, 0},
		{"read token", "Bearer " + readToken, flight.RoleRead},
		{"submit token", "bearer " + submitToken, flight.RoleSubmit},
	}
	for _, who := range callers {
		for _, call := range calls {
			t.Run(who.name+"/"+call.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(withHeader(who.header), 30*time.Second)
				defer cancel()
				err := call.call(ctx, strings.ReplaceAll(who.name, " ", "-"))
				want := codes.OK
				switch {
				case who.role == 0:
					want = codes.Unauthenticated
				case who.role < call.need:
					want = codes.PermissionDenied
				}
				if got := status.Code(err); got != want {
					t.Fatalf("%s with %s: got %v (%v), want %v", call.name, who.name, got, err, want)
				}
				msg := status.Convert(err).Message()
				switch want {
				case codes.Unauthenticated:
					if !strings.Contains(msg, "authorization: Bearer <token>") {
						t.Errorf("message %q does not say which header to send", msg)
					}
				case codes.PermissionDenied:
					if !strings.Contains(msg, fmt.Sprintf("role %s", call.need)) {
						t.Errorf("message %q does not name the role needed", msg)
					}
				}
			})
		}
	}
}

func TestParseAuth(t *testing.T) {
	const h = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		name, file, err string
	}{
		{"ok", `{"tokens": [{"name": "a", "sha256": "` + h + `", "role": "read"}]}`, ""},
		{"unknown key", `{"tokens": [{"name": "a", "sha256": "` + h + `", "role": "read", "x": 1}]}`, `unknown field "x"`},
		{"unknown top key", `{"tokens": [], "users": []}`, `unknown field "users"`},
		{"bad hex", `{"tokens": [{"name": "a", "sha256": "zz", "role": "read"}]}`, "64 hex digits"},
		{"short hex", `{"tokens": [{"name": "a", "sha256": "abcd", "role": "read"}]}`, "64 hex digits"},
		{"unknown role", `{"tokens": [{"name": "a", "sha256": "` + h + `", "role": "admin"}]}`, `unknown role "admin"`},
		{"no role", `{"tokens": [{"name": "a", "sha256": "` + h + `"}]}`, `unknown role ""`},
		{"duplicate name", `{"tokens": [{"name": "a", "sha256": "` + h + `", "role": "read"}, {"name": "a", "sha256": "` + strings.Repeat("1", 64) + `", "role": "read"}]}`, `"a" appears twice`},
		{"duplicate hash", `{"tokens": [{"name": "a", "sha256": "` + h + `", "role": "read"}, {"name": "b", "sha256": "` + h + `", "role": "submit"}]}`, "same sha256"},
		{"no name", `{"tokens": [{"sha256": "` + h + `", "role": "read"}]}`, "no name"},
		{"empty", `{"tokens": []}`, "no tokens"},
		{"empty object", `{}`, "no tokens"},
		{"not json", `tokens: []`, "token file"},
		{"two values", `{"tokens": [{"name": "a", "sha256": "` + h + `", "role": "read"}]} {}`, "after the JSON"},
		{"certificates only", `{"certificates": [{"name": "c", "subject": "CN=c,O=Lab", "role": "submit"}]}`, ""},
		{"tokens and certificates", `{"tokens": [{"name": "a", "sha256": "` + h + `", "role": "read"}], "certificates": [{"name": "c", "subject": "CN=c", "role": "read"}]}`, ""},
		{"certificate without subject", `{"certificates": [{"name": "c", "role": "read"}]}`, `certificate "c" has no subject`},
		{"certificate without name", `{"certificates": [{"subject": "CN=c", "role": "read"}]}`, "certificate 0 has no name"},
		{"certificate with unknown role", `{"certificates": [{"name": "c", "subject": "CN=c", "role": "root"}]}`, `unknown role "root"`},
		{"certificate unknown key", `{"certificates": [{"name": "c", "subject": "CN=c", "role": "read", "cn": "c"}]}`, `unknown field "cn"`},
		{"subject twice", `{"certificates": [{"name": "c", "subject": "CN=c", "role": "read"}, {"name": "d", "subject": "CN=c", "role": "read"}]}`, `subject "CN=c" appears twice`},
		{"name of a token and a certificate", `{"tokens": [{"name": "c", "sha256": "` + h + `", "role": "read"}], "certificates": [{"name": "c", "subject": "CN=c", "role": "read"}]}`, `"c" appears twice`},
		{"neither", `{"tokens": [], "certificates": []}`, "no tokens and no certificates"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := flight.ParseAuth([]byte(tc.file))
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
		})
	}
}

// TestTokenLine checks that the line 'flightbatch token' prints lets its
// token in.
func TestTokenLine(t *testing.T) {
	a, err := flight.ParseAuth([]byte(`{"tokens": [` + flight.TokenLine("carol", "s3cret", flight.RoleSubmit) + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Shards: 1, Records: 4, Auth: a})
	c := dial(t, srv.Addr)
	if err := action(withHeader("Bearer s3cret"), c, api.ActionListJobs, struct{}{}, nil); err != nil {
		t.Fatal(err)
	}
}
