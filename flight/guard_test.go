package flight

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestGuardInterceptors: a handler's panic becomes Internal for that call, and
// every status leaves with a message cut to maxStatusBytes and the code the
// edge chooses.
func TestGuardInterceptors(t *testing.T) {
	s := NewServer(nil, nil, &Options{Log: slog.New(slog.DiscardHandler)})
	huge := strings.Repeat("x", 100_000)
	cases := []struct {
		name     string
		handler  func() error
		wantCode codes.Code
		wantIn   string
	}{
		{"panic", func() error { var s []int; return errors.New(fmt.Sprint(s[len(s)+1])) }, codes.Internal, "index out of range"},
		{"panic-huge-value", func() error { panic(huge) }, codes.Internal, "xxxx"},
		{"huge-status", func() error { return status.Error(codes.InvalidArgument, "bad name "+huge) }, codes.InvalidArgument, "bad name"},
		{"plain-error", func() error { return errors.New("disk on fire " + huge) }, codes.Internal, "disk on fire"},
		{"ok", func() error { return nil }, codes.OK, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := func(kind string, err error) {
				t.Helper()
				st, _ := status.FromError(err)
				if st.Code() != c.wantCode || !strings.Contains(st.Message(), c.wantIn) || len(st.Message()) > maxStatusBytes+32 {
					t.Fatalf("%s: got %v (%d bytes), want %v containing %q", kind, st.Code(), len(st.Message()), c.wantCode, c.wantIn)
				}
			}
			_, err := s.recoverUnary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Unary"},
				func(context.Context, any) (any, error) { return nil, c.handler() })
			check("unary", err)
			err = s.recoverStream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Stream"},
				func(any, grpc.ServerStream) error { return c.handler() })
			check("stream", err)
		})
	}
}
