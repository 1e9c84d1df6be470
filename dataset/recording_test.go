package dataset

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/edf/edftest"
	"github.com/flightbatch/flightbatch/store"
)

// discontinuous is an EDF+D file of one 4 Hz signal in 1-s records: two
// segments of three records, at 0 s and 10 s, and a BAD span [1.5, 1.7).
func discontinuous() []byte {
	onsets := []string{"+0", "+1", "+2", "+10", "+11", "+12"}
	return edftest.File{
		Reserved: "EDF+D", Records: 6,
		Signals: []edftest.Signal{
			{Label: "Fz", N: 4, PMin: -100, PMax: 100, DMin: -1000, DMax: 1000, Digital: func(rec, j int) int64 { return int64(rec*4 + j) }},
			{Label: "EDF Annotations", N: 30, Annotation: true, PMin: -1, PMax: 1, DMin: -32768, DMax: 32767,
				AnnotationRecord: func(rec int) string {
					s := onsets[rec] + "\x14\x14\x00"
					if rec == 1 {
						s += "+1.5\x150.2\x14BAD_artifact\x14\x00"
					}
					return s
				}},
		},
	}.Build()
}

type row struct {
	epoch   int64
	start   time.Time
	samples []float64
}

func readRecordingRows(t *testing.T, c *Catalog, name string) []row {
	t.Helper()
	ctx := context.Background()
	ds, err := c.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var out []row
	for _, sh := range ds.Shards {
		r, err := c.OpenShard(ctx, sh, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		for r.Next() {
			rec := r.RecordBatch()
			ep := rec.Column(rec.Schema().FieldIndices("epoch")[0]).(*array.Int64)
			st := rec.Column(rec.Schema().FieldIndices("start_time")[0]).(*array.Timestamp)
			sm := rec.Column(rec.Schema().FieldIndices("samples")[0]).(*array.List)
			vals := sm.ListValues().(*array.Float64)
			for i := 0; i < int(rec.NumRows()); i++ {
				a, b := sm.ValueOffsets(i)
				out = append(out, row{ep.Value(i), time.UnixMicro(int64(st.Value(i))).UTC(), append([]float64(nil), vals.Float64Values()[a:b]...)})
			}
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		r.Release()
	}
	return out
}

func TestRegisterDiscontinuous(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, "raw/d.edf", discontinuous()); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(st)
	start := time.Date(2024, 3, 1, 10, 20, 30, 0, time.UTC)
	phys := func(i int) float64 { return -100 + float64(i+1000)*200/2000 }
	cases := []struct {
		name     string
		opts     RegisterOptions
		epochs   []int64
		starts   []float64 // seconds after the header's start
		lengths  int
		nanAt    map[int64][]int
		firstRec []int // the first record of each epoch, for the samples
	}{
		{"ep1-drop", RegisterOptions{EpochSeconds: 1}, []int64{0, 2, 3, 4, 5}, []float64{0, 2, 10, 11, 12}, 4, nil, []int{0, 2, 3, 4, 5}},
		{"ep1-keep", RegisterOptions{EpochSeconds: 1, BadSpans: "keep"}, []int64{0, 1, 2, 3, 4, 5}, []float64{0, 1, 2, 10, 11, 12}, 4, nil, []int{0, 1, 2, 3, 4, 5}},
		{"ep1-nan", RegisterOptions{EpochSeconds: 1, BadSpans: "nan"}, []int64{0, 1, 2, 3, 4, 5}, []float64{0, 1, 2, 10, 11, 12}, 4, map[int64][]int{1: {2}}, []int{0, 1, 2, 3, 4, 5}},
		{"ep2-drop", RegisterOptions{EpochSeconds: 2}, []int64{1}, []float64{10}, 8, nil, []int{3}},
		{"whole", RegisterOptions{BadSpans: "keep"}, []int64{0, 1}, []float64{0, 10}, 12, nil, []int{0, 3}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Prefix = "raw/"
			tc.opts.ShardMB = 1e-5 // one epoch a shard
			res, err := c.Register(ctx, tc.name, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			rows := readRecordingRows(t, c, tc.name)
			if res.Rows != int64(len(rows)) || len(rows) != len(tc.epochs) {
				t.Fatalf("%d rows (result says %d), want %d", len(rows), res.Rows, len(tc.epochs))
			}
			for i, r := range rows {
				if r.epoch != tc.epochs[i] {
					t.Errorf("row %d: epoch %d, want %d", i, r.epoch, tc.epochs[i])
				}
				if want := start.Add(time.Duration(tc.starts[i] * float64(time.Second))); !r.start.Equal(want) {
					t.Errorf("row %d: start %v, want %v", i, r.start, want)
				}
				if len(r.samples) != tc.lengths {
					t.Fatalf("row %d: %d samples, want %d", i, len(r.samples), tc.lengths)
				}
				for j, v := range r.samples {
					isNaN := false
					for _, k := range tc.nanAt[r.epoch] {
						isNaN = isNaN || k == j
					}
					want := phys(tc.firstRec[i]*4 + j)
					if isNaN != math.IsNaN(v) || (!isNaN && math.Abs(v-want) > 1e-12) {
						t.Fatalf("row %d sample %d: %v, want %v (NaN: %v)", i, j, v, want, isNaN)
					}
				}
			}
		})
	}
	if _, err := c.Register(ctx, "whole", RegisterOptions{Prefix: "raw/"}); !errors.Is(err, ErrExists) {
		t.Errorf("registering a taken name: %v, want ErrExists", err)
	}
}

func TestRegisterRefusesFileChangedSinceRegistration(t *testing.T) {
	ctx := context.Background()
	st, _ := store.Open(ctx, "mem://")
	data := discontinuous()
	if err := st.WriteAll(ctx, "raw/d.edf", data); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(st)
	if _, err := c.Register(ctx, "d", RegisterOptions{Prefix: "raw/"}); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, "raw/d.edf", append(data, make([]byte, 64)...)); err != nil {
		t.Fatal(err)
	}
	ds, err := c.Get(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.OpenShard(ctx, ds.Shards[0], memory.DefaultAllocator)
	if err == nil || !errors.Is(err, ErrDamaged) {
		t.Fatalf("reading a file changed since registration: %v, want ErrDamaged", err)
	}
	t.Log(err)
}

// An index found in the store is not trusted: one edited to read past the
// file or to hold huge epochs is refused as damaged, not a crash.
func TestDamagedRecordingIndex(t *testing.T) {
	ctx := context.Background()
	st, _ := store.Open(ctx, "mem://")
	if err := st.WriteAll(ctx, "raw/d.edf", discontinuous()); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(st)
	if _, err := c.Register(ctx, "d", RegisterOptions{Prefix: "raw/", EpochSeconds: 1}); err != nil {
		t.Fatal(err)
	}
	key := Prefix + "d/" + recordingIndexFile
	good, err := st.ReadAll(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	edits := map[string]func(ix *recIndex){
		"segment past the end":  func(ix *recIndex) { ix.Files[0].Segments[0].Records = 1 << 40 },
		"huge epochs":           func(ix *recIndex) { ix.Options.EpochSeconds = 1e12 },
		"shard past the epochs": func(ix *recIndex) { ix.Shards[0].Epoch1 = 1 << 50 },
		"signal offsets":        func(ix *recIndex) { ix.Files[0].Header.Signals[0].Offset = 1 << 30 },
	}
	for name, edit := range edits {
		t.Run(name, func(t *testing.T) {
			ix := &recIndex{}
			if err := json.Unmarshal(good, ix); err != nil {
				t.Fatal(err)
			}
			edit(ix)
			data, _ := json.Marshal(ix)
			if err := st.WriteAll(ctx, key, data); err != nil {
				t.Fatal(err)
			}
			ds, err := c.Get(ctx, "d")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.OpenShard(ctx, ds.Shards[0], memory.DefaultAllocator)
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("open: %v, want ErrDamaged", err)
			}
		})
	}
	if err := st.WriteAll(ctx, key, []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "d"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Get of an index that is not JSON: %v, want ErrDamaged", err)
	}
}
