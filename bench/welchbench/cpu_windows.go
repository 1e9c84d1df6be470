//go:build windows

package main

import (
	"math"
	"syscall"
)

// cpuSeconds is the CPU time (user and system) this process has used, which
// other processes on the machine disturb less than wall time.
func cpuSeconds() float64 {
	h, err := syscall.GetCurrentProcess()
	if err != nil {
		return math.NaN()
	}
	var created, exited, kernel, user syscall.Filetime
	if err := syscall.GetProcessTimes(h, &created, &exited, &kernel, &user); err != nil {
		return math.NaN()
	}
	// A Filetime here is a duration in units of 100 ns.
	ticks := func(t syscall.Filetime) float64 { return float64(uint64(t.HighDateTime)<<32 | uint64(t.LowDateTime)) }
	return (ticks(kernel) + ticks(user)) / 1e7
}
