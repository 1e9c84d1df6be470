//go:build !unix

package main

import "runtime/debug"

// limitMemory can only ask the garbage collector to stay under n here.
func limitMemory(n int64) error {
	debug.SetMemoryLimit(n / 10 * 9)
	return nil
}
