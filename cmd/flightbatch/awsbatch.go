package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	sdkbatch "github.com/aws/aws-sdk-go-v2/service/batch"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/awsbatch"
	"github.com/flightbatch/flightbatch/store"
)

// AWSBatchConfig configures `flightbatch serve --executor aws-batch`. Each
// flag falls back to an environment variable.
type AWSBatchConfig struct {
	JobQueue       string
	JobDefinition  string
	Timeout        time.Duration
	PollInterval   time.Duration
	Endpoint       string
	WorkerStore    string
	AllowFileStore bool
	// ShareIdentifier and Priority are for fair-share queues; Priority < 0
	// sends none.
	ShareIdentifier string
	Priority        int
	// Memory is each child's memory (e.g. 4GiB), overriding the job
	// definition's; "" keeps the definition's.
	Memory string
	// RunnableTimeout fails a job whose child waits to run longer; 0: never.
	RunnableTimeout time.Duration
}

func (c *AWSBatchConfig) flags(fs *flag.FlagSet, getenv func(string) string) {
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	dur := func(name string, def time.Duration) time.Duration {
		if d, err := time.ParseDuration(getenv(name)); err == nil {
			return d
		}
		return def
	}
	fs.StringVar(&c.JobQueue, "batch-job-queue", env("FLIGHTBATCH_BATCH_JOB_QUEUE", ""), "aws-batch: job queue, name or ARN ($FLIGHTBATCH_BATCH_JOB_QUEUE)")
	fs.StringVar(&c.JobDefinition, "batch-job-definition", env("FLIGHTBATCH_BATCH_JOB_DEFINITION", "flightbatch-worker"), "aws-batch: job definition running `flightbatch worker`, name[:revision] or ARN ($FLIGHTBATCH_BATCH_JOB_DEFINITION)")
	fs.DurationVar(&c.Timeout, "batch-timeout", dur("FLIGHTBATCH_BATCH_TIMEOUT", time.Hour), "aws-batch: time limit of one child attempt per shard, at least 60s ($FLIGHTBATCH_BATCH_TIMEOUT)")
	fs.DurationVar(&c.PollInterval, "batch-poll-interval", dur("FLIGHTBATCH_BATCH_POLL_INTERVAL", 15*time.Second), "aws-batch: mean time between polls of a job, jittered ±25% ($FLIGHTBATCH_BATCH_POLL_INTERVAL)")
	fs.StringVar(&c.Endpoint, "batch-endpoint", "", "aws-batch: AWS Batch endpoint URL (default: the AWS configuration, e.g. $AWS_ENDPOINT_URL_BATCH)")
	fs.StringVar(&c.WorkerStore, "batch-worker-store", env("FLIGHTBATCH_BATCH_WORKER_STORE", ""), "aws-batch: store URL given to children, when not --store ($FLIGHTBATCH_BATCH_WORKER_STORE)")
	fs.StringVar(&c.ShareIdentifier, "batch-share-identifier", env("FLIGHTBATCH_BATCH_SHARE_IDENTIFIER", ""), "aws-batch: fair-share identifier of submitted jobs, required by a fair-share queue ($FLIGHTBATCH_BATCH_SHARE_IDENTIFIER)")
	fs.IntVar(&c.Priority, "batch-scheduling-priority", -1, "aws-batch: scheduling priority of submitted jobs on a fair-share queue, 0 to 9999, higher first; -1 keeps the job definition's")
	fs.StringVar(&c.Memory, "batch-memory", env("FLIGHTBATCH_BATCH_MEMORY", ""), "aws-batch: memory of each child, e.g. 4GiB, in place of the job definition's ($FLIGHTBATCH_BATCH_MEMORY)")
	fs.DurationVar(&c.RunnableTimeout, "batch-runnable-timeout", dur("FLIGHTBATCH_BATCH_RUNNABLE_TIMEOUT", 0), "aws-batch: fail a job whose child waits RUNNABLE longer than this (no capacity, a request larger than the compute environment), saying why; 0 waits for ever ($FLIGHTBATCH_BATCH_RUNNABLE_TIMEOUT)")
	fs.BoolVar(&c.AllowFileStore, "batch-allow-file-store", false, "aws-batch, for tests only: allow a file:// store (children on this machine, e.g. a local test endpoint)")
}

// newAWSBatch builds the AWS Batch executor. Its children must reach the
// store, so it must be on S3 unless a test allows a file store.
func newAWSBatch(ctx context.Context, c *AWSBatchConfig, st *store.Store, fns *batch.Registry, maxAttempts int, log *slog.Logger) (*awsbatch.Executor, error) {
	workerStore := c.WorkerStore
	if workerStore == "" {
		workerStore = st.URL()
	}
	for _, u := range []string{st.URL(), workerStore} {
		switch {
		case strings.HasPrefix(u, "s3://"):
		case strings.HasPrefix(u, "file://") && c.AllowFileStore:
			log.Warn("aws-batch with a file store: only children on this machine can reach it", "store", u)
		default:
			return nil, fmt.Errorf("--executor aws-batch needs an s3://bucket/prefix store that its children can reach, not %q (--batch-allow-file-store permits file:// for tests whose children run on this machine)", u)
		}
	}
	if c.JobQueue == "" {
		return nil, fmt.Errorf("--executor aws-batch: name the job queue with --batch-job-queue or FLIGHTBATCH_BATCH_JOB_QUEUE")
	}
	if maxAttempts > awsbatch.MaxAttempts {
		return nil, fmt.Errorf("--max-attempts %d: AWS Batch retries a child at most %d times", maxAttempts, awsbatch.MaxAttempts)
	}
	if c.Timeout < awsbatch.MinTimeout {
		return nil, fmt.Errorf("--batch-timeout %v: AWS Batch needs at least %v", c.Timeout, awsbatch.MinTimeout)
	}
	if c.RunnableTimeout < 0 {
		return nil, fmt.Errorf("--batch-runnable-timeout %v: give a duration such as 2h, or 0 to wait for ever", c.RunnableTimeout)
	}
	memoryMiB := 0
	if c.Memory != "" {
		n, err := parseBytes(c.Memory)
		if err != nil || n < 4<<20 || n > 1<<50 {
			return nil, fmt.Errorf("--batch-memory %q: give a size from 4MiB, such as 4GiB or 2048MiB (AWS Batch counts it in MiB)", c.Memory)
		}
		memoryMiB = int((n + 1<<20 - 1) >> 20)
	}
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws-batch: load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	client := sdkbatch.NewFromConfig(cfg, func(o *sdkbatch.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
	})
	var priority *int32
	if c.Priority >= 0 {
		if c.Priority > 9999 {
			return nil, fmt.Errorf("--batch-scheduling-priority %d: AWS Batch takes 0 to 9999", c.Priority)
		}
		priority = aws.Int32(int32(c.Priority))
	}
	return awsbatch.New(client, st, c.JobQueue, c.JobDefinition, &awsbatch.Options{
		ShareIdentifier:    c.ShareIdentifier,
		SchedulingPriority: priority,
		MemoryMiB:          memoryMiB,
		RunnableTimeout:    c.RunnableTimeout,
		WorkerStore:        workerStore,
		Timeout:            c.Timeout,
		PollInterval:       c.PollInterval,
		Definition: func(function string) string {
			if fn, err := fns.Get(function); err == nil {
				return batch.ImageOf(fn)
			}
			return ""
		},
		Log: log,
	})
}
