// Command flightbatch is the flightbatch server, its child-job worker, and a
// client for both.
//
//	flightbatch serve [--demo]       start the Flight server
//	flightbatch gen                  write the synthetic demo dataset to a store
//	flightbatch worker               run one child of a job (an AWS Batch container's command)
//	flightbatch token --name N       make a bearer token for serve --auth-tokens
//	flightbatch version              print the version
//	flightbatch psd --dataset D ...  submit a Welch PSD job (--wait shows progress)
//	flightbatch run --function F --dataset D ...  submit a job of a registered function
//	flightbatch jobs | status ID | wait ID | cancel ID | get ID -o FILE | datasets
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.Run(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "flightbatch:", err)
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// Main dispatches subcommands.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string

	// token is the --token of a client command.
	token string
	// tlsCA, tlsCert and tlsKey are the TLS flags of a client command.
	tlsCA, tlsCert, tlsKey string
}

const usage = `flightbatch runs analyses over sharded datasets as parallel child jobs and
serves the results over Arrow Flight.

Usage: flightbatch <command> [flags]

Server commands:
  serve     start the Flight server (--demo creates the demo dataset if absent)
  gen       write the synthetic demo dataset to a store
  worker    run one child of a job (the command of an AWS Batch container)
  token     make a bearer token and its line for the --auth-tokens file
  version   print the version

Client commands (--addr, default $FLIGHTBATCH_ADDR or 127.0.0.1:8815, grpc+tls://HOST:PORT for TLS
with --tls-ca, --tls-cert, --tls-key; --token, default $FLIGHTBATCH_TOKEN):
  psd       submit a Welch PSD job; --wait shows the shards done, then the job ID
  run       submit a job of a registered function (--function, --dataset, --param k=v)
  jobs      the job history, oldest first; filters: --state, --label k=v, --since, ...
  status    a job's state, shards, timings and failures (--json for JSON)
  wait      follow a job until it ends
  cancel    stop a job
  delete    delete a finished job and its result (--force: even if other jobs read it)
  get       write a job's result (ID, job name, or latest): -o FILE.parquet, .arrow, .csv, or -
  datasets  the server's datasets
  upload    upload a .parquet, .arrow, .csv, .edf or .bdf file as a new dataset (progress bar)
  register  register a store prefix of .edf/.bdf files (or a BIDS tree) as a dataset, read in place

Run 'flightbatch <command> -h' for a command's flags.
`

// Run runs the subcommand named by args[0].
func (m *Main) Run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return flag.ErrHelp
	}
	cmd, rest := args[0], args[1:]
	if client, ok := m.clientCommand(cmd); ok {
		return reachable(client(ctx, rest))
	}
	switch cmd {
	case "serve":
		return m.serve(ctx, rest)
	case "gen":
		return m.gen(ctx, rest)
	case "worker":
		return m.worker(ctx, rest)
	case "token":
		return m.tokenCmd(rest)
	case "version":
		fmt.Fprintln(m.Stdout, version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
		return nil
	}
	fmt.Fprint(m.Stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// clientCommand finds a subcommand that talks to a server.
func (m *Main) clientCommand(name string) (func(context.Context, []string) error, bool) {
	switch name {
	case "psd":
		return m.psd, true
	case "run":
		return m.runCmd, true
	case "jobs":
		return m.jobs, true
	case "status":
		return m.status, true
	case "wait":
		return m.waitCmd, true
	case "cancel":
		return m.cancel, true
	case "delete":
		return m.deleteCmd, true
	case "get":
		return m.get, true
	case "datasets":
		return m.datasets, true
	case "register":
		return m.register, true
	case "upload":
		return m.upload, true
	}
	return nil, false
}

// reachable explains a client command's failure to reach any server.
func reachable(err error) error {
	if status.Code(err) == codes.Unavailable {
		return fmt.Errorf("cannot reach a flightbatch server (start one with 'flightbatch serve', or point --addr at one): %w", err)
	}
	return err
}
