//go:build !unix

package batchtest

import (
	"os"
	"os/exec"
)

func startInGroup(cmd *exec.Cmd) {}

func signalGroup(p *os.Process, kill bool) error { return p.Kill() }

func exitCode(ps *os.ProcessState) int32 { return int32(ps.ExitCode()) }
