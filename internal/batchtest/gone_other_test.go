//go:build !unix

package batchtest

import "os"

// gone reports whether a process no longer runs.
func gone(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return true
	}
	_ = p.Release()
	return false
}
