package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/internal/testserver"
)

// TestMain lets a test run this binary's main in a subprocess (to send it a
// real signal): FLIGHTBATCH_TEST_MAIN=1 runs main with the given arguments.
func TestMain(m *testing.M) {
	if os.Getenv("FLIGHTBATCH_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runEnv runs a command with the given environment variables.
func runEnv(t *testing.T, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	m := &Main{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}
	err := m.Run(context.Background(), args)
	return out.String(), errb.String(), err
}

// TestClientCommandsHonourAddrEnv: every client command, given no --addr,
// talks to $FLIGHTBATCH_ADDR.
func TestClientCommandsHonourAddrEnv(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	env := map[string]string{"FLIGHTBATCH_ADDR": "grpc://" + srv.Addr}
	out, _, err := runEnv(t, env, "psd", "--dataset", "demo", "--fs", "250", "--wait")
	if err != nil {
		t.Fatalf("psd with FLIGHTBATCH_ADDR: %v", err)
	}
	id := strings.TrimSpace(out)
	dir := t.TempDir()
	for _, args := range [][]string{
		{"datasets"}, {"jobs"}, {"status", id}, {"wait", id}, {"cancel", id},
		{"get", id, "-o", filepath.Join(dir, "r.arrow")},
	} {
		if _, _, err := runEnv(t, env, args...); err != nil {
			t.Errorf("%v with FLIGHTBATCH_ADDR: %v", args, err)
		}
	}
	// Without it, the default address has no server here: the variable was used.
	if _, _, err := runEnv(t, map[string]string{"FLIGHTBATCH_ADDR": "127.0.0.1:1"}, "jobs"); err == nil {
		t.Error("jobs ignored FLIGHTBATCH_ADDR pointing at no server")
	}
}

// TestHelpTexts: no flag's help repeats a default, or shows the token.
func TestHelpTexts(t *testing.T) {
	env := map[string]string{"FLIGHTBATCH_TOKEN": "s3cr3t-token-value"}
	for _, k := range []string{"ADDR", "JOB_ID", "STORE", "FUNCTIONS", "AUTH_TOKENS", "BATCH_JOB_QUEUE", "BATCH_WORKER_STORE", "TLS_CA", "TLS_CERT", "TLS_KEY"} {
		env["FLIGHTBATCH_"+k] = "set-" + strings.ToLower(k)
	}
	for _, cmd := range []string{"psd", "run", "delete", "register", "jobs", "status", "wait", "cancel", "get", "datasets", "serve", "gen", "worker", "token"} {
		_, errOut, err := runEnv(t, env, cmd, "-h")
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("%s -h: %v", cmd, err)
		}
		if strings.Contains(errOut, "s3cr3t") {
			t.Errorf("%s -h shows the token:\n%s", cmd, errOut)
		}
		for _, line := range strings.Split(errOut, "\n") {
			if strings.Count(line, "(default") > 1 {
				t.Errorf("%s -h: %q says its default twice", cmd, strings.TrimSpace(line))
			}
		}
		if cmd == "psd" && !strings.Contains(errOut, "segment overlap (default nperseg/2)\n") {
			t.Errorf("psd -h: -noverlap help:\n%s", errOut)
		}
	}
}

// TestGetCSV: get -o x.csv writes a header and one line per record.
func TestGetCSV(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	out, _, err := run(t, "psd", "--addr", srv.Addr, "--dataset", "demo", "--fs", "250", "--bands", "beta=13:30", "--wait")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	name := filepath.Join(t.TempDir(), "x.csv")
	if _, _, err := run(t, "get", id, "--addr", srv.Addr, "-o", name); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 65 || recs[0][0] != "patient_id" || recs[0][len(recs[0])-1] != "beta_power" {
		t.Fatalf("csv: %d lines, header %v", len(recs), recs[0])
	}
	if v := recs[1][len(recs[1])-1]; v == "" || strings.ContainsAny(v, "{}") {
		t.Errorf("beta_power cell %q", v)
	}
}

// TestCtrlCDuringWait sends SIGINT to `psd --wait` in a subprocess: it says
// the job goes on and how to cancel it, exits 130, and the job runs on.
func TestCtrlCDuringWait(t *testing.T) {
	fault, err := batch.ParseFaults("*:sleep=30")
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Fault: fault})
	cmd := exec.Command(os.Args[0], "psd", "--addr", srv.Addr, "--dataset", "demo", "--fs", "250", "--wait")
	cmd.Env = append(os.Environ(), "FLIGHTBATCH_TEST_MAIN=1", "FLIGHTBATCH_ADDR=", "FLIGHTBATCH_TOKEN=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var id string
	for deadline := time.Now().Add(30 * time.Second); id == "" && time.Now().Before(deadline); {
		if jobs := srv.Jobs.List(""); len(jobs) > 0 {
			id = jobs[0].JobID
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if id == "" {
		t.Fatalf("no job submitted; stderr:\n%s", stderr.String())
	}
	time.Sleep(500 * time.Millisecond) // let the client reach its wait
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("exit: %v, want code 130", err)
	}
	msg := stderr.String()
	for _, want := range []string{"goes on running", "flightbatch cancel --addr " + srv.Addr + " " + id, "flightbatch wait --addr " + srv.Addr + " " + id} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr does not say %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "rpc error") {
		t.Errorf("stderr shows a raw gRPC error:\n%s", msg)
	}
	if st, _ := srv.Jobs.Status(id); st.State.Terminal() {
		t.Errorf("the job ended %s when the client stopped waiting", st.State)
	}
	if _, _, err := run(t, "cancel", "--addr", srv.Addr, id); err != nil {
		t.Fatal(err)
	}
}

// TestRunLabelsFiltersAndLatest: run submits a function job with a name and
// labels; jobs filters by them; get latest and get NAME fetch results.
func TestRunLabelsFiltersAndLatest(t *testing.T) {
	srv := testserver.Start(t, testserver.Options{})
	a := []string{"--addr", srv.Addr}
	out, _, err := run(t, append([]string{"run", "--function", "psd", "--dataset", "demo", "--param", "fs=250",
		"--name", "weekly", "--label", "cohort=pd", "--label", "site=ox", "--wait"}, a...)...)
	if err != nil {
		t.Fatal(err)
	}
	first := strings.TrimSpace(out)
	out, _, err = run(t, append([]string{"psd", "--dataset", "demo", "--fs", "250", "--nperseg", "64", "--label", "cohort=et", "--wait"}, a...)...)
	if err != nil {
		t.Fatal(err)
	}
	second := strings.TrimSpace(out)
	st, _ := srv.Jobs.Status(first)
	if st.Name != "weekly" || st.Labels["cohort"] != "pd" || st.Labels["site"] != "ox" {
		t.Fatalf("run recorded name %q labels %v", st.Name, st.Labels)
	}

	for _, tc := range []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"jobs", "--label", "cohort=pd"}, []string{first, "cohort=pd,site=ox", "weekly"}, []string{second}},
		{[]string{"jobs", "--state", "succeeded,FAILED", "--newest", "--limit", "1"}, []string{second}, []string{first}},
		{[]string{"jobs", "--name", "weekly"}, []string{first}, []string{second}},
		{[]string{"jobs", "--since", "2000-01-01T00:00:00Z", "--until", "2001-01-01T00:00:00Z"}, nil, []string{first, second}},
	} {
		out, _, err := run(t, append(tc.args, a...)...)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v does not show %s:\n%s", tc.args, w, out)
			}
		}
		for _, n := range tc.not {
			if strings.Contains(out, n) {
				t.Errorf("%v shows %s:\n%s", tc.args, n, out)
			}
		}
	}
	if _, _, err := run(t, append([]string{"jobs", "--state", "DONE"}, a...)...); err == nil || !strings.Contains(err.Error(), "DONE") {
		t.Errorf("jobs --state DONE: %v", err)
	}

	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "latest"}, second},
		{[]string{"get", "latest", "--label", "cohort=pd"}, first},
		{[]string{"get", "weekly"}, first},
		{[]string{"get", "latest", "--dataset", "demo", "--shard", "part-00001"}, second},
	} {
		name := filepath.Join(dir, "r.arrow")
		if _, _, err := run(t, append(append(tc.args, "-o", name), a...)...); err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		// The result of a psd job depends on its nperseg: compare with the job's own.
		wantName := filepath.Join(dir, "want.arrow")
		wantArgs := []string{"get", tc.want, "-o", wantName}
		if i := slicesIndex(tc.args, "--shard"); i >= 0 {
			wantArgs = append(wantArgs, "--shard", tc.args[i+1])
		}
		if _, _, err := run(t, append(wantArgs, a...)...); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(name)
		want, _ := os.ReadFile(wantName)
		if len(got) == 0 || !bytes.Equal(got, want) {
			t.Errorf("%v wrote %d bytes, job %s's result is %d bytes", tc.args, len(got), tc.want, len(want))
		}
	}
	if _, _, err := run(t, append([]string{"get", "latest", "--label", "cohort=none", "-o", filepath.Join(dir, "x.arrow")}, a...)...); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("get latest of no job: %v", err)
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestDeleteCommand: delete refuses a running job and deletes a finished one.
func TestDeleteCommand(t *testing.T) {
	fault, err := batch.ParseFaults("part-00000:sleep=30")
	if err != nil {
		t.Fatal(err)
	}
	srv := testserver.Start(t, testserver.Options{Fault: fault})
	a := []string{"--addr", srv.Addr}
	out, _, err := run(t, append([]string{"psd", "--dataset", "demo", "--fs", "250"}, a...)...)
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	if _, _, err := run(t, append([]string{"delete", id}, a...)...); err == nil || !strings.Contains(err.Error(), "cancel it first") {
		t.Errorf("delete of a running job: %v", err)
	}
	if _, _, err := run(t, append([]string{"cancel", id}, a...)...); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if st, _ := srv.Jobs.Status(id); st.State.Terminal() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, _, err = run(t, append([]string{"delete", id}, a...)...)
	if err != nil || !strings.Contains(out, id+" deleted") {
		t.Fatalf("delete: %v %q", err, out)
	}
	if objs, err := srv.Store.List(context.Background(), "jobs/"+id+"/"); err != nil || len(objs) != 0 {
		t.Errorf("the store still holds %v (%v)", objs, err)
	}
}

// TestWorkerCPUProfile: worker --cpuprofile runs the shard again and writes
// a CPU profile (gzipped, as go tool pprof reads it).
func TestWorkerCPUProfile(t *testing.T) {
	storeURL := "file://" + t.TempDir()
	srv := testserver.Start(t, testserver.Options{Store: storeURL})
	out, _, err := run(t, "psd", "--addr", srv.Addr, "--dataset", "demo", "--fs", "250", "--wait")
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(out)
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	if _, errOut, err := run(t, "worker", "--store", storeURL, "--job", id, "--shard", "0", "--attempt", "9", "--cpuprofile", prof); err != nil {
		t.Fatalf("worker --cpuprofile: %v\n%s", err, errOut)
	}
	data, err := os.ReadFile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		t.Fatalf("the profile (%d bytes) is not gzipped", len(data))
	}
	if _, _, err := run(t, "worker", "--store", storeURL, "--job", id, "--cpuprofile", filepath.Join(t.TempDir(), "no", "such", "dir")); err == nil || !strings.Contains(err.Error(), "--cpuprofile") {
		t.Fatalf("a profile that cannot be written: %v", err)
	}
}
