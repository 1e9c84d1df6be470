package batchtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary is also the job: with BATCHTEST_CHILD=1 in its
// environment it acts as an attempt, driven by these variables:
//
//	BATCHTEST_OUT                directory for a report file per attempt
//	BATCHTEST_SLEEP              time to sleep before exiting (a Go duration)
//	BATCHTEST_FAIL_BEFORE        fail every attempt numbered below this
//	BATCHTEST_FAIL_INDEX         fail when the array index is this ("all": always)
//	BATCHTEST_EXIT_CODE          the failing exit code (default 3)
//	BATCHTEST_IGNORE_TERM        ignore SIGTERM
//	BATCHTEST_GRANDCHILD         start a long-sleeping process of its own
const passedVar = "BATCHTEST_PASSED"

func TestMain(m *testing.M) {
	switch os.Getenv("BATCHTEST_CHILD") {
	case "1":
		os.Exit(childMain())
	case "grandchild":
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	os.Setenv(passedVar, "passed-through")
	os.Setenv("BATCHTEST_NOT_PASSED", "secret")
	os.Exit(m.Run())
}

// report is what an attempt writes about itself.
type report struct {
	Env            map[string]string `json:"env"`
	PID            int               `json:"pid"`
	GrandchildPID  int               `json:"grandchild_pid"`
	StartedAtMilli int64             `json:"started_at"`
}

func childMain() int {
	if os.Getenv("BATCHTEST_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	r := report{Env: map[string]string{}, PID: os.Getpid(), StartedAtMilli: time.Now().UnixMilli()}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_BATCH_") || strings.HasPrefix(name, "BATCHTEST_") || name == "OVERRIDE_ME" || name == "FROM_DEF" {
			r.Env[name] = value
		}
	}
	if os.Getenv("BATCHTEST_GRANDCHILD") == "1" {
		self, _ := os.Executable()
		gc := exec.Command(self)
		gc.Env = []string{"BATCHTEST_CHILD=grandchild"}
		if err := gc.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "start grandchild:", err)
			return 90
		}
		r.GrandchildPID = gc.Process.Pid
	}
	if dir := os.Getenv("BATCHTEST_OUT"); dir != "" {
		data, _ := json.Marshal(r)
		name := filepath.Join(dir, reportName(os.Getenv("AWS_BATCH_JOB_ID"), os.Getenv("AWS_BATCH_JOB_ATTEMPT")))
		if err := os.WriteFile(name+".tmp", data, 0o644); err != nil {
			return 91
		}
		if err := os.Rename(name+".tmp", name); err != nil {
			return 92
		}
	}
	fmt.Println("child", os.Getenv("AWS_BATCH_JOB_ID"), "attempt", os.Getenv("AWS_BATCH_JOB_ATTEMPT"))
	if d, err := time.ParseDuration(os.Getenv("BATCHTEST_SLEEP")); err == nil {
		time.Sleep(d)
	}
	code := 3
	if c, err := strconv.Atoi(os.Getenv("BATCHTEST_EXIT_CODE")); err == nil {
		code = c
	}
	attempt, _ := strconv.Atoi(os.Getenv("AWS_BATCH_JOB_ATTEMPT"))
	if before, err := strconv.Atoi(os.Getenv("BATCHTEST_FAIL_BEFORE")); err == nil && attempt < before {
		return code
	}
	if fi := os.Getenv("BATCHTEST_FAIL_INDEX"); fi == "all" || (fi != "" && fi == os.Getenv("AWS_BATCH_JOB_ARRAY_INDEX")) {
		return code
	}
	return 0
}

func reportName(jobID, attempt string) string {
	return strings.ReplaceAll(jobID, ":", "_") + ".attempt-" + attempt + ".json"
}
