package dataset

import (
	"errors"
	"strings"
	"testing"
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
