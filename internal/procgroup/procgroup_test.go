//go:build unix

package procgroup_test

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/internal/procgroup"
)

// Stop ends the whole group: the leader and the process it started, which
// would outlive a signal to the leader alone.
func TestStopEndsTheGroup(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill bool
		want string
	}{
		{"term", false, "terminated"},
		{"kill", true, "killed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", "sleep 60 & echo $!; wait")
			procgroup.Isolate(cmd, true)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var buf [32]byte
			n, _ := out.Read(buf[:])
			grandchild, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
			if err != nil {
				t.Fatalf("read the grandchild's pid: %q %v", buf[:n], err)
			}
			if err := procgroup.Stop(cmd.Process, tc.kill); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			num, name, ok := procgroup.KilledBy(cmd.ProcessState)
			if !ok || name != tc.want || (tc.kill && num != int(syscall.SIGKILL)) {
				t.Errorf("KilledBy = %d, %q, %v; want %q", num, name, ok, tc.want)
			}
			deadline := time.Now().Add(10 * time.Second)
			for alive(grandchild) {
				if time.Now().After(deadline) {
					t.Fatalf("the grandchild %d outlived Stop by 10 s", grandchild)
				}
				time.Sleep(10 * time.Millisecond)
			}
			// A group with nothing left running (a zombie may linger where no
			// init reaps it) is no error.
			if err := procgroup.Stop(cmd.Process, true); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Errorf("Stop of a finished group: %v, want nil or os.ErrProcessDone", err)
			}
		})
	}
}

func TestKilledByExit(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 3")
	procgroup.Isolate(cmd, false)
	if err := cmd.Run(); err == nil {
		t.Fatal("want exit status 3")
	}
	if _, _, ok := procgroup.KilledBy(cmd.ProcessState); ok || cmd.ProcessState.ExitCode() != 3 {
		t.Errorf("an exit is no signal: %v", cmd.ProcessState)
	}
}

// alive reports whether process pid runs: it exists and is no zombie (whose
// reaper, in a container, may never come).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && syscall.Kill(pid, 0) == nil
	}
	// pid (comm) STATE ...: comm may hold spaces and parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
