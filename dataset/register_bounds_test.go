package dataset

import (
	"errors"
	"strings"
	"testing"

	"github.com/flightbatch/flightbatch/edf/edftest"
	"github.com/flightbatch/flightbatch/store"
)

// TestRegisterBoundsSaid: register options out of range are refused with a
// message that gives the range.
func TestRegisterBoundsSaid(t *testing.T) {
	for _, tc := range []struct {
		opts RegisterOptions
		want string
	}{
		{RegisterOptions{ShardMB: 2e6}, "1048576"},
		{RegisterOptions{ShardMB: -1}, "1048576"},
		{RegisterOptions{Shards: 100001}, "100000"},
	} {
		err := tc.opts.validateScan()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrInvalid giving %s", tc.opts, err, tc.want)
		}
	}
}

// TestRegisterQuotesShort: a long prefix or bad_spans is refused quoting only
// its short prefix.
func TestRegisterQuotesShort(t *testing.T) {
	long := strings.Repeat("Z", 3000)
	for _, o := range []RegisterOptions{
		{Prefix: "../" + long},
		{Prefix: "raw/", BadSpans: long},
	} {
		err := o.validate()
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), long[:100]) {
			t.Errorf("%.40s, %.40s: %.200v, want ErrInvalid quoting a short prefix", o.Prefix, o.BadSpans, err)
		}
	}
}

// TestRegisterBoundsShards: a registration cut into more than
// MaxRecordingShards shards (one-sample epochs, a shard_mb of a byte) is
// refused before its index is written, like a "shards" beyond the bound; one
// shard per epoch within the bound is still taken.
func TestRegisterBoundsShards(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	edfBytes := edftest.File{Records: MaxRecordingShards + 1, Duration: "0.004", Signals: []edftest.Signal{
		{Label: "C3", N: 1, PMin: -100, PMax: 100, DMin: -1000, DMax: 1000, Digital: func(rec, j int) int64 { return int64(rec % 7) }},
	}}.Build()
	if err := st.WriteAll(ctx, "raw/many.edf", edfBytes); err != nil {
		t.Fatal(err)
	}
	c := NewCatalog(st)
	_, err = c.Register(ctx, "many", RegisterOptions{Prefix: "raw/", EpochSeconds: 0.004, ShardMB: 1e-9})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "shard_mb") {
		t.Fatalf("registering %d one-sample epochs a shard each: %v, want ErrInvalid saying to give a larger shard_mb", MaxRecordingShards+1, err)
	}
	if _, err := c.Get(ctx, "many"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after the refusal: %v, want no dataset", err)
	}
	res, err := c.Register(ctx, "many", RegisterOptions{Prefix: "raw/", EpochSeconds: 0.004})
	if err != nil || res.Shards != 1 {
		t.Fatalf("the same file in default shards: %+v, %v", res, err)
	}
}
