//go:build unix

package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// running reports whether pid runs (a zombie does not).
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return !strings.Contains(string(stat), ") Z")
}
