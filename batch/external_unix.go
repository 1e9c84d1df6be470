//go:build unix

package batch

import (
	"os/exec"
	"syscall"

	"github.com/flightbatch/flightbatch/internal/procgroup"
)

// ownProcessGroup runs cmd in a process group of its own, and makes cancelling
// its context kill the whole group: the command and whatever it started. The
// command also dies with the process that runs it (Linux), so that a worker
// killed, or taken down with its server, leaves no command running on.
func ownProcessGroup(cmd *exec.Cmd) {
	procgroup.Isolate(cmd, true)
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// killProcessGroup kills what is left of cmd's process group. The group's ID
// is not reused while any of its processes lives, so this reaches only them.
func killProcessGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}
