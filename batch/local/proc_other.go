//go:build !unix

package local

import (
	"os"
	"os/exec"
)

func startInGroup(*exec.Cmd) {}

func signalGroup(p *os.Process, kill bool) error { return p.Kill() }

func killedBy(*os.ProcessState) (string, bool) { return "", false }
