package flight

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"

	aflight "github.com/apache/arrow-go/v18/arrow/flight"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/internal/clip"
	"github.com/flightbatch/flightbatch/pkg/api"
)

// Observer is told about every DoGet and DoPut stream: when it starts, and
// what it carried when it ends (records, and bytes of Arrow IPC messages).
// The server's metrics implement it.
type Observer interface {
	StreamStarted(call string)
	StreamEnded(call string, records, bytes int64)
}

// callRecord is what the audit line of one call says; the interceptors and
// handlers of the call fill it in.
type callRecord struct {
	mu      sync.Mutex
	caller  string
	subject string
	target  []slog.Attr
	records int64
	bytes   int64
}

type recordKey struct{}

func recordFrom(ctx context.Context) *callRecord {
	r, _ := ctx.Value(recordKey{}).(*callRecord)
	return r
}

func (r *callRecord) setCaller(name string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.caller = name
	r.mu.Unlock()
}

func (r *callRecord) setSubject(subject string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.subject = subject
	r.mu.Unlock()
}

func (r *callRecord) addTarget(attrs ...slog.Attr) {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.target = append(r.target, attrs...)
	r.mu.Unlock()
}

// noteRecords adds records a DoGet sent or a DoPut received to the call's record.
func noteRecords(ctx context.Context, n int64) {
	if r := recordFrom(ctx); r != nil {
		r.mu.Lock()
		r.records += n
		r.mu.Unlock()
	}
}

// methodName is the last part of a gRPC method name.
func methodName(fullMethod string) string {
	return fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
}

// pathTarget names what a ticket or descriptor path points at.
func pathTarget(t target) []slog.Attr {
	key := "dataset"
	if t.kind == "jobs" {
		key = "job"
	}
	out := []slog.Attr{slog.String(key, t.name)}
	if t.shard != "" {
		out = append(out, slog.String("shard", t.shard))
	}
	return out
}

// descriptorTarget names what a descriptor points at, or says it is a job
// request (PollFlightInfo of a command).
func descriptorTarget(d *aflight.FlightDescriptor) []slog.Attr {
	if t, err := parseDescriptor(d); err == nil {
		return pathTarget(t)
	}
	if d != nil && d.Type == aflight.DescriptorPATH && len(d.Path) > 2 && d.Path[0] == "jobs" && batch.ValidJobID(d.Path[1]) {
		// A PollFlightInfo continuation: jobs/<id>/poll/<token>.
		return []slog.Attr{slog.String("job", d.Path[1])}
	}
	if d != nil && d.Type == aflight.DescriptorCMD {
		return actionTarget(api.ActionPSD, d.Cmd)
	}
	return nil
}

// actionTarget names the job, dataset and function an action's body names.
func actionTarget(typ string, body []byte) []slog.Attr {
	out := []slog.Attr{slog.String("action", clip.String(typ, 40))}
	if len(body) > MaxActionBodyBytes {
		return out
	}
	var b struct {
		JobID    string `json:"job_id"`
		Dataset  string `json:"dataset"`
		Function string `json:"function"`
	}
	if json.Unmarshal(body, &b) != nil {
		return out
	}
	for _, kv := range [][2]string{{"job", b.JobID}, {"dataset", b.Dataset}, {"function", b.Function}} {
		if kv[1] != "" {
			out = append(out, slog.String(kv[0], clip.String(kv[1], 80)))
		}
	}
	return out
}

// audit writes the call's audit line.
func (s *Server) audit(call string, r *callRecord, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	who := r.caller
	if who == "" {
		who = r.subject
	}
	if who == "" {
		who = "anonymous"
	}
	attrs := append([]slog.Attr{slog.String("caller", who), slog.String("call", call)}, r.target...)
	if call == "DoGet" || call == "DoPut" {
		attrs = append(attrs, slog.Int64("records", r.records), slog.Int64("bytes", r.bytes))
	}
	attrs = append(attrs, slog.String("code", status.Code(err).String()))
	s.auditLog.LogAttrs(context.Background(), slog.LevelInfo, "audit", attrs...)
}

func (s *Server) observeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if isHealth(info.FullMethod) {
		return handler(ctx, req)
	}
	r := &callRecord{}
	if d, ok := req.(*aflight.FlightDescriptor); ok {
		r.target = descriptorTarget(d)
	}
	resp, err := handler(context.WithValue(ctx, recordKey{}, r), req)
	if pi, ok := resp.(*aflight.PollInfo); ok && pi.GetInfo().GetFlightDescriptor() != nil && len(r.target) > 0 && r.target[0].Key == "action" {
		if t, perr := parseDescriptor(pi.GetInfo().GetFlightDescriptor()); perr == nil {
			r.addTarget(slog.String("job", t.name))
		}
	}
	s.audit(methodName(info.FullMethod), r, err)
	return resp, err
}

func (s *Server) observeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if isHealth(info.FullMethod) {
		return handler(srv, ss)
	}
	call := methodName(info.FullMethod)
	r := &callRecord{}
	data := call == "DoGet" || call == "DoPut"
	if data && s.opts.Observer != nil {
		s.opts.Observer.StreamStarted(call)
	}
	err := handler(srv, &observedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), recordKey{}, r), r: r, call: call})
	if data && s.opts.Observer != nil {
		r.mu.Lock()
		records, bytes := r.records, r.bytes
		r.mu.Unlock()
		s.opts.Observer.StreamEnded(call, records, bytes)
	}
	s.audit(call, r, err)
	return err
}

// observedStream fills in the call's record from the messages of a stream:
// the target from the first one received, the bytes of Arrow data both ways,
// and the job a psd or run action created.
type observedStream struct {
	grpc.ServerStream
	ctx    context.Context
	r      *callRecord
	call   string
	action string
	seen   bool
}

func (o *observedStream) Context() context.Context { return o.ctx }

func (o *observedStream) RecvMsg(m any) error {
	if err := o.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	first := !o.seen
	o.seen = true
	switch m := m.(type) {
	case *aflight.FlightData:
		o.addBytes(m)
		if first && m.FlightDescriptor != nil {
			o.r.addTarget(descriptorTarget(m.FlightDescriptor)...)
		}
	case *aflight.Ticket:
		if t, err := parseTicket(m.Ticket); err == nil {
			o.r.addTarget(pathTarget(t)...)
		}
	case *aflight.Action:
		o.action = m.Type
		o.r.addTarget(actionTarget(m.Type, m.Body)...)
	}
	return nil
}

func (o *observedStream) SendMsg(m any) error {
	switch m := m.(type) {
	case *aflight.FlightData:
		o.addBytes(m)
	case *ownedData:
		o.addBytes(m.FlightData)
	case *aflight.Result:
		if o.action == api.ActionPSD || o.action == api.ActionRun {
			var res api.SubmitResult
			if json.Unmarshal(m.Body, &res) == nil && res.JobID != "" {
				o.r.addTarget(slog.String("job", res.JobID))
			}
		}
	}
	return o.ServerStream.SendMsg(m)
}

func (o *observedStream) addBytes(m *aflight.FlightData) {
	o.r.mu.Lock()
	o.r.bytes += int64(len(m.DataHeader) + len(m.DataBody))
	o.r.mu.Unlock()
}
