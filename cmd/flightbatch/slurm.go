package main

import (
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flightbatch/flightbatch/batch/child"
	"github.com/flightbatch/flightbatch/batch/slurm"
	"github.com/flightbatch/flightbatch/store"
)

// SlurmConfig configures `flightbatch serve --executor slurm`. Each flag
// falls back to an environment variable.
type SlurmConfig struct {
	Partition     string
	Account       string
	QOS           string
	TimeLimit     string
	CPUsPerChild  int
	MemPerChild   string
	MaxRunning    int
	SbatchArgs    string
	WorkerCommand string
	WorkerEnv     []string
	WorkerStore   string
	LogDir        string
	MaxArraySize  int
	Sacct         bool
	PollInterval  time.Duration
}

func (c *SlurmConfig) flags(fs *flag.FlagSet, getenv func(string) string) {
	env := func(name string) string { return getenv("FLIGHTBATCH_SLURM_" + name) }
	num := func(name string) int { n, _ := strconv.Atoi(env(name)); return n }
	poll := 5 * time.Second
	if d, err := time.ParseDuration(env("POLL_INTERVAL")); err == nil {
		poll = d
	}
	fs.StringVar(&c.Partition, "slurm-partition", env("PARTITION"), "slurm: partition of the children ($FLIGHTBATCH_SLURM_PARTITION; default the cluster's)")
	fs.StringVar(&c.Account, "slurm-account", env("ACCOUNT"), "slurm: account charged for the children ($FLIGHTBATCH_SLURM_ACCOUNT)")
	fs.StringVar(&c.QOS, "slurm-qos", env("QOS"), "slurm: quality of service of the children ($FLIGHTBATCH_SLURM_QOS)")
	fs.StringVar(&c.TimeLimit, "slurm-time", env("TIME"), "slurm: time limit of one child attempt, in sbatch's form, e.g. 30:00 ($FLIGHTBATCH_SLURM_TIME)")
	fs.IntVar(&c.CPUsPerChild, "slurm-cpus-per-child", num("CPUS_PER_CHILD"), "slurm: CPUs of each child, sbatch --cpus-per-task ($FLIGHTBATCH_SLURM_CPUS_PER_CHILD)")
	fs.StringVar(&c.MemPerChild, "slurm-mem-per-child", env("MEM_PER_CHILD"), "slurm: memory of each child, sbatch --mem, e.g. 4G ($FLIGHTBATCH_SLURM_MEM_PER_CHILD)")
	fs.IntVar(&c.MaxRunning, "slurm-max-running", num("MAX_RUNNING"), "slurm: most children of one job running at once, sbatch --array=...%K; 0: no cap ($FLIGHTBATCH_SLURM_MAX_RUNNING)")
	fs.StringVar(&c.SbatchArgs, "slurm-sbatch-args", env("SBATCH_ARGS"), "slurm: further sbatch arguments, separated by spaces, e.g. --constraint=skylake ($FLIGHTBATCH_SLURM_SBATCH_ARGS)")
	fs.StringVar(&c.WorkerCommand, "slurm-worker-command", env("WORKER_COMMAND"), "slurm: shell command each child runs (default: this executable, worker), e.g. 'module load python/3.11 && flightbatch worker' ($FLIGHTBATCH_SLURM_WORKER_COMMAND)")
	fs.Func("slurm-worker-env", "slurm: NAME=value set in every child; repeatable", func(s string) error {
		c.WorkerEnv = append(c.WorkerEnv, s)
		return nil
	})
	fs.StringVar(&c.WorkerStore, "slurm-worker-store", env("WORKER_STORE"), "slurm: store URL given to children (default --store) ($FLIGHTBATCH_SLURM_WORKER_STORE)")
	fs.StringVar(&c.LogDir, "slurm-log-dir", env("LOG_DIR"), "slurm: directory of the children's logs, on a filesystem this server and the compute nodes share (default: slurm-logs in a file:// store, else ./flightbatch-slurm-logs) ($FLIGHTBATCH_SLURM_LOG_DIR)")
	fs.IntVar(&c.MaxArraySize, "slurm-max-array-size", num("MAX_ARRAY_SIZE"), "slurm: most tasks of one job array (default: the cluster's MaxArraySize); larger jobs are split ($FLIGHTBATCH_SLURM_MAX_ARRAY_SIZE)")
	fs.BoolVar(&c.Sacct, "slurm-sacct", env("SACCT") == "1", "slurm: ask sacct about jobs scontrol no longer shows (the cluster keeps accounting) ($FLIGHTBATCH_SLURM_SACCT=1)")
	fs.DurationVar(&c.PollInterval, "slurm-poll-interval", poll, "slurm: time between polls of a job ($FLIGHTBATCH_SLURM_POLL_INTERVAL)")
}

// newSlurm builds the Slurm executor. Children get the server's functions
// file, which must be on the shared filesystem too.
func newSlurm(c *SlurmConfig, st *store.Store, functions string, log *slog.Logger) (*slurm.Executor, error) {
	if c.MaxArraySize < 0 || c.CPUsPerChild < 0 || c.MaxRunning < 0 {
		return nil, fmt.Errorf("--executor slurm: --slurm-max-array-size, --slurm-cpus-per-child and --slurm-max-running may not be negative")
	}
	env := append([]string(nil), c.WorkerEnv...)
	if functions != "" {
		abs, err := filepath.Abs(functions)
		if err != nil {
			return nil, fmt.Errorf("--functions %q: %w", functions, err)
		}
		env = append(env, child.EnvFunctions+"="+abs)
	}
	return slurm.New(st, &slurm.Options{
		Partition:     c.Partition,
		Account:       c.Account,
		QOS:           c.QOS,
		TimeLimit:     c.TimeLimit,
		CPUsPerChild:  c.CPUsPerChild,
		MemPerChild:   c.MemPerChild,
		MaxRunning:    c.MaxRunning,
		ExtraArgs:     strings.Fields(c.SbatchArgs),
		WorkerCommand: c.WorkerCommand,
		WorkerEnv:     env,
		WorkerStore:   c.WorkerStore,
		LogDir:        c.LogDir,
		MaxArraySize:  c.MaxArraySize,
		Accounting:    c.Sacct,
		PollInterval:  c.PollInterval,
		Log:           log,
	})
}
