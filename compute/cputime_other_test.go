//go:build !unix

package compute

import "time"

// cpuTime is not measured here: 0, and the figures that need it are not reported.
func cpuTime() time.Duration { return 0 }
