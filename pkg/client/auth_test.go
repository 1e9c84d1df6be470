package client_test

import (
	"context"
	"crypto/sha256"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/testserver"
	"github.com/flightbatch/flightbatch/pkg/api"
	"github.com/flightbatch/flightbatch/pkg/client"
)

func TestWithToken(t *testing.T) {
	auth, err := flight.NewAuth([]flight.Token{
		{Name: "reader", SHA256: sha256.Sum256([]byte("r")), Role: flight.RoleRead},
		{Name: "submitter", SHA256: sha256.Sum256([]byte("s")), Role: flight.RoleSubmit},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Shards: 2, Records: 8, Auth: auth})
	ctx := context.Background()
	connect := func(opts ...client.Option) *client.Client {
		c, err := client.Dial(ctx, srv.Addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	anon, reader, submitter := connect(), connect(client.WithToken("r")), connect(client.WithToken("s"))

	if _, err := anon.ListJobs(ctx, ""); status.Code(err) != codes.Unauthenticated {
		t.Errorf("ListJobs without a token: %v, want Unauthenticated", err)
	}
	req := api.PSDRequest{Dataset: "demo", PSDParams: api.PSDParams{FS: new(250.0)}}
	if _, err := reader.SubmitPSD(ctx, req); status.Code(err) != codes.PermissionDenied {
		t.Errorf("SubmitPSD with a read token: %v, want PermissionDenied", err)
	}
	id, err := submitter.SubmitPSD(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	st, err := reader.Wait(ctx, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.SubmittedBy != "submitter" {
		t.Errorf("submitted_by = %q, want submitter", st.SubmittedBy)
	}
	rdr, err := reader.Result(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	var rows int64
	for rdr.Next() {
		rows += rdr.RecordBatch().NumRows()
	}
	if err := rdr.Err(); err != nil || rows != 8 {
		t.Errorf("result: %d rows, err %v; want 8 rows", rows, err)
	}
}
