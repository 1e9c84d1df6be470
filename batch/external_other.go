//go:build !unix

package batch

import "os/exec"

// ownProcessGroup leaves cmd as it is: without Unix process groups, cancelling
// kills the command alone (exec's default).
func ownProcessGroup(cmd *exec.Cmd) {}

// killProcessGroup does nothing without Unix process groups.
func killProcessGroup(cmd *exec.Cmd) {}
