package dataset

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/trig"
)

// DemoOptions size the synthetic demo dataset.
type DemoOptions struct {
	// Shards is the number of shards (default 8).
	Shards int
	// Bytes is the approximate total size of the signals (default 60 MB).
	Bytes int64
	// Seed makes the data reproducible (default 1).
	Seed uint64
	// FS is the sampling rate in Hz (default 250).
	FS float64
	// Seconds is the length of one record (default 30).
	Seconds float64
}

func (o *DemoOptions) defaults() {
	if o.Shards <= 0 {
		o.Shards = 8
	}
	if o.Bytes <= 0 {
		o.Bytes = 60 << 20
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.FS <= 0 {
		o.FS = 250
	}
	if o.Seconds <= 0 {
		o.Seconds = 30
	}
}

// DemoSchema is the schema of the demo dataset.
var DemoSchema = arrow.NewSchema([]arrow.Field{
	{Name: "patient_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "session_id", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "channel", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "start_time", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}, Nullable: true},
	{Name: "fs", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float32), Nullable: true},
}, nil)

var demoChannels = []string{"STN-L-01", "STN-L-12", "STN-L-23", "STN-R-01", "STN-R-12", "STN-R-23"}

const demoBatchRows = 16

// GenerateDemo writes the synthetic LFP demo dataset: 1/f background, a beta-band
// (13-30 Hz) oscillation whose frequency and strength depend on the patient, and
// 50 Hz line noise. The same options always give the same data.
func GenerateDemo(ctx context.Context, c *Catalog, name string, o DemoOptions) error {
	o.defaults()
	n := int(o.FS * o.Seconds)
	records := int(o.Bytes / int64(4*n))
	if records < o.Shards {
		records = o.Shards
	}
	w, err := c.NewWriter(ctx, name, DemoSchema, &WriterOptions{ShardBytes: math.MaxInt64})
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			_ = w.Abort() // the demo's own error is the one to report
		}
	}()
	mem := memory.DefaultAllocator
	b := array.NewRecordBuilder(mem, DemoSchema)
	defer b.Release()
	perSession := len(demoChannels) * 20 // 20 consecutive segments per channel
	t0 := time.Date(2024, 3, 4, 9, 0, 0, 0, time.UTC)
	rec := 0
	for shard := 0; shard < o.Shards; shard++ {
		end := (shard + 1) * records / o.Shards
		for rec < end {
			if err := ctx.Err(); err != nil {
				return err
			}
			for rows := 0; rows < demoBatchRows && rec < end; rows++ {
				session := rec / perSession
				patient := session / 2
				within := rec % perSession
				ch := within / 20
				seg := within % 20
				start := t0.Add(time.Duration(session) * 24 * time.Hour).
					Add(time.Duration(float64(seg)*o.Seconds) * time.Second)
				b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("P%02d", patient+1))
				b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("P%02d-S%d", patient+1, session%2+1))
				b.Field(2).(*array.StringBuilder).Append(demoChannels[ch])
				b.Field(3).(*array.TimestampBuilder).Append(arrow.Timestamp(start.UnixMicro()))
				b.Field(4).(*array.Float64Builder).Append(o.FS)
				lb := b.Field(5).(*array.ListBuilder)
				lb.Append(true)
				vb := lb.ValueBuilder().(*array.Float32Builder)
				vb.Reserve(n)
				demoSignal(vb, o.Seed, uint64(rec), patient, ch, n, o.FS)
				rec++
			}
			batch := b.NewRecordBatch()
			err := w.Write(batch)
			batch.Release()
			if err != nil {
				return err
			}
		}
		if err := w.EndShard(); err != nil {
			return err
		}
	}
	if err := w.Commit(); err != nil {
		return err
	}
	ok = true
	return nil
}

// demoSignal appends one synthetic LFP segment in microvolts. Its samples are
// the same bits whatever GOAMD64 the binary is built for: every product that
// feeds a sum is converted (float64(a*b)), which rounds it, so that no level
// fuses it into a multiply-add, and the sines come from package trig, not
// from package math, whose Go code is fused at GOAMD64=v3 and above.
func demoSignal(vb *array.Float32Builder, seed, rec uint64, patient, ch, n int, fs float64) {
	r := rand.New(rand.NewPCG(seed, rec))
	pr := rand.New(rand.NewPCG(seed, 1<<40+uint64(patient)))
	betaFreq := 14 + float64(14*pr.Float64())  // the patient's beta peak, 14-28 Hz
	betaAmp := 0.5 + float64(3.5*pr.Float64()) // the patient's beta strength
	if ch%3 == 2 {
		betaAmp *= 0.4 // outer contacts see less beta
	}
	// The phases are converted too: the compiler would fuse their products
	// into the loop's sums.
	phase := float64(2 * math.Pi * r.Float64())
	envPhase := float64(2 * math.Pi * r.Float64())
	linePhase := float64(2 * math.Pi * r.Float64())
	var b0, b1, b2 float64 // pink-noise filter state (Kellet's economy filter)
	for i := 0; i < n; i++ {
		t := float64(i) / fs
		white := r.NormFloat64()
		b0 = float64(0.99765*b0) + float64(white*0.0990460)
		b1 = float64(0.96300*b1) + float64(white*0.2965164)
		b2 = float64(0.57000*b2) + float64(white*1.0526913)
		pink := b0 + b1 + b2 + float64(white*0.1848)
		env := 0.6 + float64(0.4*trig.Sin(float64(2*math.Pi*0.2*t)+envPhase)) // beta bursts
		beta := float64(betaAmp * env * trig.Sin(float64(2*math.Pi*betaFreq*t)+phase))
		line := float64(0.3 * trig.Sin(float64(2*math.Pi*50*t)+linePhase))
		vb.UnsafeAppend(float32(10 * (pink + beta + line)))
	}
}
