package main

import (
	"context"
	"github.com/flightbatch/flightbatch/batch"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/store"
)

func TestAWSBatchRefuses(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "file://"+t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ok := AWSBatchConfig{JobQueue: "q", JobDefinition: "d", Timeout: time.Hour, PollInterval: time.Second, Endpoint: "http://127.0.0.1:1", AllowFileStore: true}
	log := slog.New(slog.DiscardHandler)
	if _, err := newAWSBatch(ctx, &ok, st, batch.NewRegistry(), 3, log); err != nil {
		t.Fatalf("a file store allowed for tests: %v", err)
	}
	for _, tc := range []struct {
		name     string
		edit     func(c *AWSBatchConfig)
		attempts int
		want     string
	}{
		{"file store", func(c *AWSBatchConfig) { c.AllowFileStore = false }, 3, "needs an s3://"},
		{"file worker store", func(c *AWSBatchConfig) { c.WorkerStore = "file:///elsewhere"; c.AllowFileStore = false }, 3, "needs an s3://"},
		{"no queue", func(c *AWSBatchConfig) { c.JobQueue = "" }, 3, "job queue"},
		{"attempts", func(c *AWSBatchConfig) {}, 11, "--max-attempts"},
		{"timeout", func(c *AWSBatchConfig) { c.Timeout = 30 * time.Second }, 3, "--batch-timeout"},
		{"memory", func(c *AWSBatchConfig) { c.Memory = "lots" }, 3, "--batch-memory"},
		{"tiny memory", func(c *AWSBatchConfig) { c.Memory = "1MiB" }, 3, "--batch-memory"},
		{"runnable timeout", func(c *AWSBatchConfig) { c.RunnableTimeout = -time.Minute }, 3, "--batch-runnable-timeout"},
	} {
		c := ok
		tc.edit(&c)
		_, err := newAWSBatch(ctx, &c, st, batch.NewRegistry(), tc.attempts, log)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error about %q", tc.name, err, tc.want)
		}
	}
}
