package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/batch"
	"github.com/aws/aws-sdk-go-v2/service/batch/types"
)

// With BATCHTEST_CHILD=1 the test binary is the job: it writes its pid and
// AWS_BATCH_JOB_ARRAY_INDEX to $OUT/<index>, then sleeps for $SLEEP.
func TestMain(m *testing.M) {
	if os.Getenv("BATCHTEST_CHILD") == "1" {
		idx := os.Getenv("AWS_BATCH_JOB_ARRAY_INDEX")
		line := strconv.Itoa(os.Getpid()) + " " + os.Getenv("AWS_BATCH_JOB_ID") + " " + os.Getenv("PASSED")
		if err := os.WriteFile(filepath.Join(os.Getenv("OUT"), idx), []byte(line), 0o644); err != nil {
			os.Exit(2)
		}
		if d, err := time.ParseDuration(os.Getenv("SLEEP")); err == nil {
			time.Sleep(d)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRun starts the command as a test starts it, reads the address from
// its first line, runs an array job through it and shuts it down.
func TestRun(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	defs, _ := json.Marshal(map[string]any{
		"jobDefinitionName": "job",
		"type":              "container",
		"containerProperties": map[string]any{
			"image":   "ignored",
			"command": []string{self, "-test.run=^$"},
			"environment": []map[string]string{
				{"name": "BATCHTEST_CHILD", "value": "1"}, {"name": "OUT", "value": out},
			},
		},
		"retryStrategy": map[string]any{"attempts": 2},
	})
	defsPath := filepath.Join(dir, "defs.json")
	if err := os.WriteFile(defsPath, defs, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PASSED", "yes")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--addr", "127.0.0.1:0", "--definitions", defsPath, "--max-running", "2",
			"--log-dir", filepath.Join(dir, "logs"), "--pass-env", "PASSED", "--grace", "200ms"}, w, io.Discard)
		w.Close()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if !ok || !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q", line)
	}
	go io.Copy(io.Discard, stdout)

	client := batch.New(batch.Options{
		BaseEndpoint: aws.String(url),
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("k", "s", ""),
	})
	submit := func(name string, size int32, sleep string) string {
		sub, err := client.SubmitJob(ctx, &batch.SubmitJobInput{
			JobName: aws.String(name), JobQueue: aws.String("q"), JobDefinition: aws.String("job"),
			ArrayProperties:    &types.ArrayProperties{Size: aws.Int32(size)},
			ContainerOverrides: &types.ContainerOverrides{Environment: []types.KeyValuePair{{Name: aws.String("SLEEP"), Value: aws.String(sleep)}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(sub.JobId)
	}
	id := submit("e2e", 3, "0s")
	deadline := time.Now().Add(30 * time.Second)
	for {
		d, err := client.DescribeJobs(ctx, &batch.DescribeJobsInput{Jobs: []string{id}})
		if err != nil {
			t.Fatal(err)
		}
		if s := d.Jobs[0].Status; s == types.JobStatusSucceeded {
			break
		} else if s == types.JobStatusFailed || time.Now().After(deadline) {
			t.Fatalf("array job %s: %+v", s, d.Jobs[0].ArrayProperties)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range 3 {
		data, err := os.ReadFile(filepath.Join(out, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		if f := strings.Fields(string(data)); len(f) != 3 || f[1] != id+":"+strconv.Itoa(i) || f[2] != "yes" {
			t.Errorf("child %d wrote %q", i, data)
		}
	}

	// Shutting down kills what runs.
	for _, name := range []string{"0", "1"} {
		os.Remove(filepath.Join(out, name))
	}
	submit("slow", 2, "1m")
	var pids []int
	for _, name := range []string{"0", "1"} {
		for {
			data, err := os.ReadFile(filepath.Join(out, name))
			if err == nil && len(strings.Fields(string(data))) == 3 {
				pid, _ := strconv.Atoi(strings.Fields(string(data))[0])
				pids = append(pids, pid)
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("slow children did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("child %d still runs after shutdown", pid)
		}
	}
}
