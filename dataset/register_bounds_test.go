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
