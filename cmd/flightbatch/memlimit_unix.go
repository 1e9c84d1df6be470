//go:build unix

package main

import (
	"fmt"
	"runtime/debug"
	"syscall"
)

// limitMemory caps the process's data segment, which on Linux (since 4.7)
// counts every private writable mapping: the Go heap, and a child's malloc
// arenas. An allocation past it fails, and the Go runtime exits with "fatal
// error: runtime: out of memory". RLIMIT_AS would also count the address
// space the Go runtime reserves without using (a Go program does not start
// under about 1 GiB of it), and a cgroup needs privileges and a cgroup
// layout this process cannot count on. The garbage collector is asked to
// keep the heap under nine tenths of the cap, so that the cap is met only by
// memory really in use.
func limitMemory(n int64) error {
	var lim syscall.Rlimit
	setLimit(&lim.Cur, n) // uint64 on Linux and macOS, int64 on FreeBSD
	setLimit(&lim.Max, n)
	if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &lim); err != nil {
		return fmt.Errorf("set RLIMIT_DATA to %d bytes: %w", n, err)
	}
	debug.SetMemoryLimit(n / 10 * 9)
	return nil
}

// setLimit sets an rlimit field, whatever its integer type on this system.
func setLimit[T int64 | uint64](f *T, n int64) { *f = T(n) }
