//go:build unix

package batch

import (
	"fmt"
	"os"
	"strings"
	"syscall"
)

// alive reports whether pid runs (a zombie is dead).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// killProcess kills pid.
func killProcess(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }
