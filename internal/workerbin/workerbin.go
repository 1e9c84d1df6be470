// Package workerbin builds the flightbatch binary for tests that run children
// as `flightbatch worker` processes. A test binary builds it once, in
// TestMain, without the race detector (whose shadow memory a child's memory
// limit would not leave room for), and removes it at the end:
//
//	func TestMain(m *testing.M) { os.Exit(workerbin.Main(m, &bin)) }
package workerbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Package is the import path of the flightbatch command.
const Package = "github.com/flightbatch/flightbatch/cmd/flightbatch"

// Build builds the flightbatch binary into dir and returns its path. It needs
// the go command, which `go test` puts on PATH.
func Build(dir string) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("workerbin: the go command is needed to build the worker: %w", err)
	}
	out := filepath.Join(dir, "flightbatch")
	cmd := exec.Command(gobin, "build", "-o", out, Package)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("workerbin: go build %s: %v\n%s", Package, err, msg)
	}
	return out, nil
}

// Main builds the binary into a temporary directory, sets *bin to its path,
// runs the tests and removes the directory; it returns the exit code.
func Main(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "flightbatch-worker-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
