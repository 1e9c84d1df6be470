package psd_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/analysis/psd"
	"github.com/flightbatch/flightbatch/batch"
)

// input is one batch of records: a signal per record and its sampling rate.
func input(t *testing.T, alloc memory.Allocator, fs []float64, signals [][]float64) arrow.RecordBatch {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "fs", Type: arrow.PrimitiveTypes.Float64},
		{Name: "samples", Type: arrow.ListOf(arrow.PrimitiveTypes.Float64)},
	}, nil)
	b := array.NewRecordBuilder(alloc, schema)
	defer b.Release()
	for i, x := range signals {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.Float64Builder).Append(fs[i])
		lb := b.Field(2).(*array.ListBuilder)
		lb.Append(true)
		lb.ValueBuilder().(*array.Float64Builder).AppendValues(x, nil)
	}
	return b.NewRecordBatch()
}

// run prepares and runs psd over rec, and returns the result as rows of
// column name -> value (lists as []float64, nulls as nil).
func run(t *testing.T, params string, rec arrow.RecordBatch) ([]map[string]any, error) {
	t.Helper()
	alloc := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer alloc.AssertSize(t, 0)
	schema, norm, err := psd.Function{}.Prepare(json.RawMessage(params), rec.Schema())
	if err != nil {
		return nil, err
	}
	rdr, err := array.NewRecordReader(rec.Schema(), []arrow.RecordBatch{rec})
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Release()
	var rows []map[string]any
	task := batch.Task{JobID: "j", Shard: "s", Attempt: 1, Params: norm, Schema: schema, Alloc: alloc}
	err = psd.Function{}.Run(context.Background(), task, rdr, func(out arrow.RecordBatch) error {
		for r := 0; r < int(out.NumRows()); r++ {
			row := map[string]any{}
			for c, col := range out.Columns() {
				name := out.ColumnName(c)
				if col.IsNull(r) {
					row[name] = nil
					continue
				}
				switch a := col.(type) {
				case *array.List:
					s, e := a.ValueOffsets(r)
					row[name] = append([]float64(nil), a.ListValues().(*array.Float64).Float64Values()[s:e]...)
				case *array.Float64:
					row[name] = a.Value(r)
				case *array.Int64:
					row[name] = a.Value(r)
				case *array.Int32:
					row[name] = a.Value(r)
				case *array.String:
					row[name] = a.Value(r)
				}
			}
			rows = append(rows, row)
		}
		return nil
	})
	return rows, err
}

func noise(n int, seed float64) []float64 {
	x := make([]float64, n)
	v := seed
	for i := range x {
		v = math.Mod(v*16807, 2147483647)
		x[i] = v/2147483647 - 0.5 + math.Sin(float64(i)*0.3)
	}
	return x
}

// With fs_column, a band above a record's Nyquist frequency gives that record
// a null band power and a reason; the other records are computed.
func TestBandAboveRecordNyquist(t *testing.T) {
	rec := input(t, memory.DefaultAllocator, []float64{256, 100}, [][]float64{noise(1024, 7), noise(1024, 11)})
	defer rec.Release()
	rows, err := run(t, `{"fs_column": "fs", "nperseg": 128, "bands": {"beta": [13, 30], "gamma": [30, 80]}, "relative": true, "fmin": 1, "fmax": 90}`, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows", len(rows))
	}
	fast, slow := rows[0], rows[1]
	if fast["gamma_power"] == nil || fast["gamma_relative"] == nil || fast[psd.ReasonColumn] != nil {
		t.Errorf("a 256 Hz record must have every value and no reason: %v", fast[psd.ReasonColumn])
	}
	if slow["gamma_power"] != nil || slow["gamma_relative"] != nil || slow["beta_relative"] != nil {
		t.Errorf("a 100 Hz record must have null gamma power and null relative powers (fmax 90 > 50): %v %v %v", slow["gamma_power"], slow["gamma_relative"], slow["beta_relative"])
	}
	if slow["beta_power"] == nil {
		t.Error("the 100 Hz record's beta power is within its Nyquist frequency and must be computed")
	}
	why, _ := slow[psd.ReasonColumn].(string)
	if !strings.Contains(why, `band "gamma"`) || !strings.Contains(why, "Nyquist") || !strings.Contains(why, "fmax 90") {
		t.Errorf("reason %q must name the band, fmax and the Nyquist frequency", why)
	}
}

// Relative power is a fraction of the total in [fmin, fmax]: a band outside
// that range is refused (it gave 1.81 for [0, 64] Hz), and a valid band's
// relative power is at most 1.
func TestRelativePowerAtMostOne(t *testing.T) {
	rec := input(t, memory.DefaultAllocator, []float64{250, 250}, [][]float64{noise(2048, 3), noise(2048, 5)})
	defer rec.Release()
	for _, bad := range []string{
		`{"fs": 250, "bands": {"wide": [0, 64]}, "relative": true}`,
		`{"fs": 250, "bands": {"beta": [13, 30]}, "relative": true, "fmin": 15, "fmax": 40}`,
		`{"fs_column": "fs", "bands": {"gamma": [30, 60]}, "relative": true}`,
	} {
		if _, err := run(t, bad, rec); !errors.Is(err, batch.ErrInvalid) || !strings.Contains(err.Error(), "outside [fmin, fmax]") {
			t.Errorf("%s: %v, want a refusal naming [fmin, fmax]", bad, err)
		}
	}
	rows, err := run(t, `{"fs": 250, "nperseg": 256, "bands": {"all": [1, 45], "alpha": [8, 12], "edge": [40, 45]}, "relative": true}`, rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		for _, b := range []string{"all", "alpha", "edge"} {
			v := row[b+"_relative"].(float64)
			if !(v >= 0 && v <= 1+1e-12) {
				t.Errorf("%s_relative = %v, outside [0, 1]", b, v)
			}
		}
		if v := row["all_relative"].(float64); math.Abs(v-1) > 1e-12 {
			t.Errorf("the relative power of [fmin, fmax] itself is %v, want 1", v)
		}
	}
}

// With a fixed fs, fmax above the Nyquist frequency is refused, also when it
// is the default 45 Hz of relative power.
func TestFMaxAboveNyquistRefused(t *testing.T) {
	rec := input(t, memory.DefaultAllocator, []float64{80}, [][]float64{noise(512, 3)})
	defer rec.Release()
	for _, bad := range []string{
		`{"fs": 80, "bands": {"alpha": [8, 12]}, "relative": true}`,
		`{"fs": 80, "fmax": 41}`,
		`{"fs": 80, "bands": {"beta": [13, 41]}}`,
	} {
		if _, err := run(t, bad, rec); !errors.Is(err, batch.ErrInvalid) || !strings.Contains(err.Error(), "Nyquist") {
			t.Errorf("%s: %v, want a refusal naming the Nyquist frequency", bad, err)
		}
	}
}

// fmin and fmax crop freqs and psd, without "relative".
func TestCrop(t *testing.T) {
	rec := input(t, memory.DefaultAllocator, []float64{250}, [][]float64{noise(2048, 3)})
	defer rec.Release()
	full, err := run(t, `{"fs": 250, "nperseg": 250}`, rec)
	if err != nil {
		t.Fatal(err)
	}
	crop, err := run(t, `{"fs": 250, "nperseg": 250, "fmin": 1, "fmax": 45}`, rec)
	if err != nil {
		t.Fatal(err)
	}
	ff, fp := full[0]["freqs"].([]float64), full[0]["psd"].([]float64)
	cf, cp := crop[0]["freqs"].([]float64), crop[0]["psd"].([]float64)
	var wantF, wantP []float64
	for i, f := range ff {
		if f >= 1 && f <= 45 {
			wantF, wantP = append(wantF, f), append(wantP, fp[i])
		}
	}
	if len(cf) != 45 || len(cf) != len(wantF) {
		t.Fatalf("cropped to %d frequencies, want %d (1..45 Hz at 1 Hz resolution)", len(cf), len(wantF))
	}
	for i := range cf {
		if cf[i] != wantF[i] || cp[i] != wantP[i] {
			t.Fatalf("bin %d: %v Hz %v, want %v Hz %v", i, cf[i], cp[i], wantF[i], wantP[i])
		}
	}
	if _, err := run(t, `{"fs": 250, "fmin": 1, "fmax": 45, "return_onesided": false}`, rec); !errors.Is(err, batch.ErrInvalid) {
		t.Errorf("a two-sided crop: %v, want a refusal", err)
	}
}

// "average": null gives one row per segment (MNE's average=None), not the
// mean; their mean is the Welch PSD.
func TestAverageNullPerSegment(t *testing.T) {
	rec := input(t, memory.DefaultAllocator, []float64{250, 250}, [][]float64{noise(1000, 3), noise(600, 5)})
	defer rec.Release()
	for _, avg := range []string{`null`, `"none"`} {
		rows, err := run(t, `{"fs": 250, "nperseg": 200, "average": `+avg+`}`, rec)
		if err != nil {
			t.Fatal(err)
		}
		// 1000 samples: (1000-200)/100+1 = 9 segments; 600: 5.
		if len(rows) != 14 {
			t.Fatalf("average %s: %d rows, want 9 + 5 segment rows", avg, len(rows))
		}
		mean, err := run(t, `{"fs": 250, "nperseg": 200}`, rec)
		if err != nil {
			t.Fatal(err)
		}
		want := mean[0]["psd"].([]float64)
		sum := make([]float64, len(want))
		for s, row := range rows[:9] {
			if row["id"].(int64) != 0 || row["segment"].(int32) != int32(s) || row["segment_time"].(float64) != (float64(s*100)+100)/250 {
				t.Fatalf("row %d: id %v segment %v at %v s", s, row["id"], row["segment"], row["segment_time"])
			}
			for k, v := range row["psd"].([]float64) {
				sum[k] += v / 9
			}
		}
		for k := range want {
			if math.Abs(sum[k]-want[k]) > 1e-12*math.Abs(want[k]) {
				t.Fatalf("bin %d: mean of segments %v, Welch %v", k, sum[k], want[k])
			}
		}
	}
}

// nan_policy: "propagate" (the default) or "omit", which combines the good
// spans' averaged spectra (mean or median), not per-segment ones; anything
// else is refused.
func TestNaNPolicyRefusals(t *testing.T) {
	rec := input(t, memory.DefaultAllocator, []float64{250}, [][]float64{noise(512, 3)})
	defer rec.Release()
	for _, bad := range []string{
		`{"fs": 250, "nan_policy": "drop"}`,
		`{"fs": 250, "nan_policy": "omit", "average": null}`,
		`{"fs": 250, "nan_policy": "omit", "average": "none"}`,
	} {
		if _, err := run(t, bad, rec); !errors.Is(err, batch.ErrInvalid) || !strings.Contains(err.Error(), "nan_policy") {
			t.Errorf("%s: %v, want a refusal naming nan_policy", bad, err)
		}
	}
	x := noise(512, 3)
	for i := 100; i < 140; i++ {
		x[i] = math.NaN()
	}
	nan := input(t, memory.DefaultAllocator, []float64{250, 250}, [][]float64{x, make([]float64, 64)})
	defer nan.Release()
	for i := range 64 {
		nan.Column(2).(*array.List).ListValues().(*array.Float64).Float64Values()[512+i] = math.NaN()
	}
	rows, err := run(t, `{"fs": 250, "nperseg": 64, "nan_policy": "omit"}`, nan)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rows[0]["psd"].([]float64) {
		if math.IsNaN(v) {
			t.Fatal("omit left a NaN in the PSD of a record with good spans")
		}
	}
	if rows[1]["psd"] != nil || !strings.Contains(rows[1][psd.ReasonColumn].(string), "no good sample") {
		t.Errorf("a record of NaN only: psd %v, reason %v", rows[1]["psd"], rows[1][psd.ReasonColumn])
	}
}

// With "omit", a record whose one bad span is at its start has the PSD of its
// good tail alone, under either average; and one bad span in the middle
// combines the two sides' spectra, weighted by the samples their segments
// cover, each averaged as asked.
func TestNaNOmitSpans(t *testing.T) {
	for _, average := range []string{"mean", "median"} {
		t.Run(average, func(t *testing.T) {
			params := `{"fs": 250, "nperseg": 64, "noverlap": 16, "average": "` + average + `"`
			good := noise(1000, 5)
			head := append(make([]float64, 0, 1000), good...)
			for i := range 300 {
				head[i] = math.NaN()
			}
			left, right := noise(400, 7), noise(530, 9)
			middle := append(append(append([]float64{}, left...), math.NaN(), math.NaN()), right...)
			rec := input(t, memory.DefaultAllocator, []float64{250, 250, 250, 250, 250},
				[][]float64{head, good[300:], middle, left, right})
			defer rec.Release()
			omit, err := run(t, params+`, "nan_policy": "omit"}`, rec)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := run(t, params+`}`, rec)
			if err != nil {
				t.Fatal(err)
			}
			near := func(what string, got, want []float64) {
				t.Helper()
				if len(got) != len(want) {
					t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
				}
				for f := range want {
					if math.Abs(got[f]-want[f]) > 1e-12*math.Abs(want[f]) {
						t.Fatalf("%s: bin %d: %v, want %v", what, f, got[f], want[f])
					}
				}
			}
			near("bad head", omit[0]["psd"].([]float64), ref[1]["psd"].([]float64))
			// Segments of 64 every 48 samples cover 400 - (400-16)%48 = 400
			// samples of the left span and 530 - (530-16)%48 = 496 of the right.
			wl, wr := 400.0, 496.0
			l, r := ref[3]["psd"].([]float64), ref[4]["psd"].([]float64)
			want := make([]float64, len(l))
			for f := range want {
				want[f] = (wl*l[f] + wr*r[f]) / (wl + wr)
			}
			near("bad middle", omit[2]["psd"].([]float64), want)
		})
	}
}

// Records of changing lengths and rates in one batch: each row's freqs are
// its own record's (the kernel reuses them only between records of the same
// length and rate), against numpy's rfftfreq written out here.
func TestFreqsFollowEachRecord(t *testing.T) {
	lengths := []int{600, 600, 200, 600, 600, 200, 200, 600}
	rates := []float64{250, 250, 250, 500, 500, 500, 250, 250}
	signals := make([][]float64, len(lengths))
	for i, n := range lengths {
		signals[i] = noise(n, float64(i+1))
	}
	rec := input(t, memory.NewGoAllocator(), rates, signals)
	defer rec.Release()
	rows, err := run(t, `{"fs_column": "fs", "nperseg": 256}`, rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(lengths) {
		t.Fatalf("%d rows, want %d", len(rows), len(lengths))
	}
	for i, row := range rows {
		nfft := min(lengths[i], 256) // scipy: nperseg is the record's length when shorter
		got, _ := row["freqs"].([]float64)
		if len(got) != nfft/2+1 {
			t.Fatalf("row %d (%d samples at %g Hz): %d freqs, want %d", i, lengths[i], rates[i], len(got), nfft/2+1)
		}
		for k, f := range got {
			want := float64(k) * rates[i] / float64(nfft)
			if math.Abs(f-want) > 1e-12*rates[i] {
				t.Fatalf("row %d (%d samples at %g Hz): freqs[%d] = %g, want %g", i, lengths[i], rates[i], k, f, want)
			}
		}
	}
}
