//go:build !unix

package console_test

import "time"

// cpuTime is not measured here: it is 0, and so are the figures made from it.
func cpuTime() time.Duration { return 0 }
