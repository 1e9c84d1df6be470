package local

import (
	"os/exec"
	"strings"
	"testing"
)

// TestExplainCrashOutput feeds the outputs a worker's runtime writes when it
// dies into the executor's account of the attempt, as a crashed child's
// stderr reaches it, and checks what the attempt error says.
func TestExplainCrashOutput(t *testing.T) {
	// A real exit status 2, as the Go runtime exits after a fatal error.
	cmd := exec.Command("sh", "-c", "exit 2")
	if err := cmd.Run(); err == nil {
		t.Fatal("sh -c 'exit 2' succeeded")
	}
	ps := cmd.ProcessState
	for _, tt := range []struct {
		name   string
		stderr string
		limit  int64
		want   string
	}{
		{"heap", "fatal error: runtime: cannot allocate memory\n\nruntime stack:\nruntime.throw(...)\n", 256 << 20,
			"ran out of memory (its limit is 256 MiB: serve --child-memory): fatal error: runtime: cannot allocate memory"},
		{"arena", "fatal error: out of memory allocating heap arena metadata\n\nruntime stack:\n", 0,
			"ran out of memory: fatal error: out of memory allocating heap arena metadata"},
		{"thread under a limit", "runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\nPC=0x7ff562597eec m=4\n\nrax    0x0\ngs     0x0\n", 256 << 20,
			"ran out of memory (its limit is 256 MiB: serve --child-memory): it could not start a thread: runtime/cgo: pthread_create failed"},
		{"thread without a limit", "runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort\ngs     0x0\n", 0,
			"worker process crashed (exit status 2): runtime/cgo: pthread_create failed"},
		{"abort", "SIGABRT: abort\nPC=0x1 m=0\ngs     0x0\n", 0, "worker process crashed (exit status 2): SIGABRT: abort"},
		{"panic", "panic: injected panic\n\ngoroutine 1 [running]:\nmain.main()\n", 0, "worker process crashed (exit status 2): panic: injected panic"},
		{"last line", "something\nthe end\n", 0, "worker process failed (exit status 2): the end"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tail := &tailBuffer{max: tailSize}
			// Written in pieces that cut lines, as a pipe delivers them.
			for s := tt.stderr; s != ""; {
				n := min(7, len(s))
				_, _ = tail.Write([]byte(s[:n]))
				s = s[n:]
			}
			got := explain(ps, tail.crash(), tail.String(), tt.limit).Error()
			if !strings.Contains(got, tt.want) {
				t.Errorf("explain: %q\nwant it to contain %q", got, tt.want)
			}
		})
	}
}
