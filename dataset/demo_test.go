package dataset

import (
	"encoding/binary"
	"fmt"
	"hash"
	"math"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/flightbatch/flightbatch/internal/buildbits"
	"github.com/flightbatch/flightbatch/store"
)

// TestBitsAcrossBuilds compares the demo dataset between two builds of this
// package, e.g. GOAMD64=v1 and GOAMD64=v3 (see package buildbits): one
// digest per shard of every column (the samples' float32 bits, start times,
// rates and names) of small demo datasets. scripts/test.sh runs the pair;
// without FLIGHTBATCH_BITS_OUT or FLIGHTBATCH_BITS_WANT the test is skipped.
func TestBitsAcrossBuilds(t *testing.T) {
	buildbits.Compare(t, "dataset", demoDigests)
}

// demoDigests generates the demo datasets TestBitsAcrossBuilds compares.
func demoDigests(t testing.TB) []buildbits.Digest {
	st, err := store.Open(t.Context(), "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cat := NewCatalog(st)
	var ds []buildbits.Digest
	for _, tc := range []struct {
		name string
		o    DemoOptions
	}{
		// 600 records of 0.4 s: several sessions, channels and patients.
		{"short", DemoOptions{Shards: 3, Bytes: 600 * 400, Seconds: 0.4}},
		// The first 256 records of the default dataset (seed 1, 30 s at
		// 250 Hz): about 2 million samples, since a difference in the
		// last bits of the float64 signal changes its float32 sample only
		// now and then (on average once in some 250,000 samples).
		{"default", DemoOptions{Shards: 4, Bytes: 256 * 30000}},
		{"fs1000", DemoOptions{Shards: 2, Bytes: 4 * 4 * 2000, FS: 1000, Seconds: 2, Seed: 3}},
	} {
		if err := GenerateDemo(t.Context(), cat, tc.name, tc.o); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		d, err := cat.Get(t.Context(), tc.name)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for i, sh := range d.Shards {
			ds = append(ds, buildbits.Hash(fmt.Sprintf("demo/%s/%d", tc.name, i), func(h hash.Hash) {
				hashDemoShard(t, cat, sh, h)
			}))
		}
	}
	return ds
}

// hashDemoShard writes every value of a demo shard into h.
func hashDemoShard(t testing.TB, cat *Catalog, sh Shard, h hash.Hash) {
	r, err := cat.OpenShard(t.Context(), sh, memory.DefaultAllocator)
	if err != nil {
		t.Fatalf("%s: %v", sh.Name, err)
	}
	defer r.Release()
	var b [8]byte
	put := func(v uint64) {
		binary.LittleEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	rows := 0
	for r.Next() {
		rec := r.RecordBatch()
		for row := 0; row < int(rec.NumRows()); row++ {
			for c := 0; c < 3; c++ {
				s := rec.Column(c).(*array.String).Value(row)
				put(uint64(len(s)))
				h.Write([]byte(s))
			}
			put(uint64(rec.Column(3).(*array.Timestamp).Value(row)))
			put(math.Float64bits(rec.Column(4).(*array.Float64).Value(row)))
			l := rec.Column(5).(*array.List)
			lo, hi := l.ValueOffsets(row)
			vs := l.ListValues().(*array.Float32).Float32Values()[lo:hi]
			put(uint64(len(vs)))
			for _, v := range vs {
				binary.LittleEndian.PutUint32(b[:4], math.Float32bits(v))
				h.Write(b[:4])
			}
			rows++
		}
	}
	if err := r.Err(); err != nil {
		t.Fatalf("%s: %v", sh.Name, err)
	}
	if rows == 0 {
		t.Fatalf("%s: no rows", sh.Name)
	}
}

// BenchmarkDemoSignal generates one record of the default demo dataset (30 s
// at 250 Hz) per op.
func BenchmarkDemoSignal(b *testing.B) {
	const n = 7500
	vb := array.NewFloat32Builder(memory.DefaultAllocator)
	defer vb.Release()
	b.SetBytes(4 * n)
	for i := 0; b.Loop(); i++ {
		vb.Reserve(n)
		demoSignal(vb, 1, uint64(i%256), i%256/240, i%6, n, 250)
		vb.NewArray().Release()
	}
}
