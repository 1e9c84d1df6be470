// Command batchtest-endpoint serves a test-only stand-in for the AWS Batch
// control plane that runs every job attempt as a local process. It is for
// end-to-end tests, never for production.
//
// It prints "listening http://ADDR" as the first line on stdout once it
// accepts connections, logs to stderr, and stops on SIGINT or SIGTERM,
// killing every running attempt.
//
//	batchtest-endpoint --addr 127.0.0.1:0 --definitions defs.json \
//	    --max-running 4 --log-dir logs --pass-env AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_ENDPOINT_URL_S3
//
// --fail, --stuck-runnable and --drop-submit-replies switch on some of the
// Endpoint's behaviours (batchtest.Behaviours) from the start.
//
// Point an AWS SDK at it with the endpoint URL (for example
// AWS_ENDPOINT_URL_BATCH=http://ADDR) and any static credentials.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/flightbatch/flightbatch/internal/batchtest"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "batchtest-endpoint:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("batchtest-endpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on")
	defsPath := fs.String("definitions", "", "JSON file of job definitions: {name: {command, environment, parameters, retryStrategy, timeout}} or RegisterJobDefinition input(s)")
	maxRunning := fs.Int("max-running", 4, "most attempts running at once (like a compute environment's vCPU cap)")
	logDir := fs.String("log-dir", "", "directory for each attempt's stdout and stderr (LOG-DIR/<logStreamName>.log); default: this process's stderr")
	passEnv := fs.String("pass-env", "", "comma-separated names of environment variables passed on to every attempt")
	minTimeout := fs.Int("min-timeout", 60, "least timeout.attemptDurationSeconds accepted, in seconds (AWS Batch: 60)")
	grace := fs.Duration("grace", 5*time.Second, "time between SIGTERM and SIGKILL when an attempt is stopped")
	ceName := fs.String("ce-name", "batchtest", "compute environment name given to attempts as AWS_BATCH_CE_NAME")
	verbose := fs.Bool("v", false, "log every request")
	fail := fs.String("fail", "", "attempts that fail as AWS Batch reports a host terminated, an image not pulled or an out-of-memory kill: KIND:INDEX[:ATTEMPTS],... with KIND host-terminated, cannot-pull-container or out-of-memory, INDEX an array index or *")
	stuck := fs.String("stuck-runnable", "", "keep every job RUNNABLE, with this statusReason (e.g. \"CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - ...\")")
	drop := fs.Int("drop-submit-replies", 0, "take the first N SubmitJobs and close their connections without a reply")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts := &batchtest.Options{
		MaxRunning:         *maxRunning,
		LogDir:             *logDir,
		ChildOutput:        stderr,
		MinTimeoutSeconds:  int32(*minTimeout),
		TerminateGrace:     *grace,
		ComputeEnvironment: *ceName,
		Logger:             logger,
	}
	if *passEnv != "" {
		for name := range strings.SplitSeq(*passEnv, ",") {
			if name = strings.TrimSpace(name); name != "" {
				opts.PassEnv = append(opts.PassEnv, name)
			}
		}
	}
	if *defsPath != "" {
		defs, err := batchtest.LoadDefinitions(*defsPath)
		if err != nil {
			return err
		}
		opts.Definitions = defs
	}
	ep, err := batchtest.New(opts)
	if err != nil {
		return err
	}
	defer ep.Close()
	failures, err := batchtest.ParseFailures(*fail)
	if err != nil {
		return fmt.Errorf("--fail: %w", err)
	}
	ep.SetBehaviours(batchtest.Behaviours{Fail: failures, StuckRunnable: *stuck, DropSubmitResponse: *drop})

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: ep, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "listening http://%s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return ep.Close()
}
