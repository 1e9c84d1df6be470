//go:build unix

package procgroup

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// Isolate makes cmd, once started, the leader of a new process group. With
// dieWithParent, the kernel also kills it when this process dies (Linux
// only), so that a killed parent leaves no child behind.
func Isolate(cmd *exec.Cmd, dieWithParent bool) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if dieWithParent {
		setParentDeathSignal(cmd.SysProcAttr)
	}
}

// Stop sends SIGTERM, or SIGKILL if kill, to the process group led by p. It
// returns os.ErrProcessDone when the group has no process left.
func Stop(p *os.Process, kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	err := syscall.Kill(-p.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// KilledBy reports the signal that ended a process, by number and name
// ("killed"), if one did.
func KilledBy(ps *os.ProcessState) (num int, name string, ok bool) {
	if ws, isWait := ps.Sys().(syscall.WaitStatus); isWait && ws.Signaled() {
		return int(ws.Signal()), ws.Signal().String(), true
	}
	return 0, "", false
}
