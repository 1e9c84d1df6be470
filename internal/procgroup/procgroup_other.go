//go:build !unix

package procgroup

import (
	"os"
	"os/exec"
)

// Isolate does nothing where there are no process groups.
func Isolate(*exec.Cmd, bool) {}

// Stop kills p alone where there are no process groups.
func Stop(p *os.Process, _ bool) error { return p.Kill() }

// KilledBy reports nothing where processes are not ended by signals.
func KilledBy(*os.ProcessState) (int, string, bool) { return 0, "", false }
