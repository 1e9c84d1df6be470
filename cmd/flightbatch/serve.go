package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/check"
	"github.com/flightbatch/flightbatch/console"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/flight"
	"github.com/flightbatch/flightbatch/internal/tlsfiles"
	"github.com/flightbatch/flightbatch/metrics"
	"github.com/flightbatch/flightbatch/server"
	"github.com/flightbatch/flightbatch/store"
)

// ServeConfig is the configuration of `flightbatch serve`, filled by flags.
type ServeConfig struct {
	Addr        string
	Store       string
	Executor    string
	Workers     int
	MaxAttempts int
	Compression string
	LogLevel    string
	Demo        bool
	DemoShards  int
	DemoMB      int
	Batch       AWSBatchConfig
	Slurm       SlurmConfig
	Functions   string
	// ShardMB is the target shard size of uploaded datasets, in MiB.
	ShardMB int
	// AuthTokens is a token file; empty leaves authentication off.
	AuthTokens string
	// ChildMemory caps each local child process's memory ("2GiB"; "0": none).
	ChildMemory string
	// KeepResults deletes jobs that ended longer ago than this; 0 keeps them.
	KeepResults time.Duration
	// ProgressInterval is how often a running job's progress is written to
	// the store (batch.Options.SaveInterval).
	ProgressInterval time.Duration
	// TLSCert and TLSKey are the server's certificate and key (PEM); set,
	// the server speaks TLS only. TLSClientCA requires client certificates
	// signed by its CAs (mutual TLS).
	TLSCert, TLSKey, TLSClientCA string
	// Insecure allows tokens over plaintext on an address other than loopback.
	Insecure bool
	// HTTP is the address of the metrics, /healthz and the jobs page; empty
	// leaves them off.
	HTTP string
	// CPUProfile, when set, is a file that gets a CPU profile (pprof) of the
	// whole run, written when the server stops.
	CPUProfile string
	// CoalesceFrames merges each DoGet message's HTTP/2 DATA frames into
	// frames as large as the client allows (plaintext only).
	CoalesceFrames bool
}

func (c *ServeConfig) flags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8815", "address to serve Flight on (port 0 picks a free one)")
	fs.StringVar(&c.Store, "store", "file://./flightbatch-data", "store for datasets and results: file://DIR or s3://bucket/prefix")
	fs.StringVar(&c.Executor, "executor", "local", "where child jobs run: local, aws-batch (see the --batch-* flags) or slurm (see the --slurm-* flags)")
	fs.IntVar(&c.Workers, "workers", runtime.NumCPU(), "children run at once by the local executor")
	fs.IntVar(&c.MaxAttempts, "max-attempts", 3, "attempts per child before its shard fails")
	fs.StringVar(&c.Compression, "compression", "", "IPC compression of DoGet streams: zstd, lz4 or empty for none")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.Demo, "demo", false, "create the demo dataset first if it is absent")
	fs.IntVar(&c.DemoShards, "demo-shards", 8, "shards of the demo dataset")
	fs.IntVar(&c.DemoMB, "demo-mb", 60, "approximate size of the demo dataset in MB")
	fs.StringVar(&c.Functions, "functions", getenv("FLIGHTBATCH_FUNCTIONS"), functionsFlagHelp)
	fs.IntVar(&c.ShardMB, "shard-mb", dataset.DefaultShardBytes>>20, "target size in MiB of the shards of a dataset uploaded with DoPut")
	fs.StringVar(&c.AuthTokens, "auth-tokens", getenv("FLIGHTBATCH_AUTH_TOKENS"), authTokensFlagHelp)
	fs.StringVar(&c.ChildMemory, "child-memory", "2GiB", "memory cap of each child process of the local executor, e.g. 512MiB or 4GiB (0: none); a child past it fails its attempt")
	fs.DurationVar(&c.ProgressInterval, "progress-interval", batch.DefaultSaveInterval, "how often a running job's progress (its shards' states) is written to its manifest in the store; a restarted server recounts what the manifest lacks from the parts and attempt records")
	fs.DurationVar(&c.KeepResults, "keep-results", 0, "delete jobs (manifest, parts, everything) that ended longer ago than this `duration`, e.g. 720h; never the input of a running job (0 keeps every job)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "server certificate (PEM, with its chain); with --tls-key the server speaks TLS only. Reloaded when the file changes")
	fs.StringVar(&c.TLSKey, "tls-key", "", "key of --tls-cert (PEM)")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "CA certificates (PEM) that sign client certificates: turns on mutual TLS, every client must present one")
	fs.StringVar(&c.HTTP, "http", "", "serve Prometheus /metrics, /healthz and the jobs page on this address (off when empty); TLS and credentials as for Flight")
	fs.BoolVar(&c.CoalesceFrames, "coalesce-frames", true, "on plaintext, send each message's HTTP/2 DATA frames as frames as large as the client allows, not gRPC's 16 KiB ones")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile (go tool pprof) of the server to this `file` when it stops")
	fs.BoolVar(&c.Insecure, "insecure", false, "allow bearer tokens over plaintext on an address other than loopback (they travel in clear text)")
}

// parseBytes reads a size such as 512MiB, 2GiB or 1048576.
func parseBytes(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}, {"", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err != nil || n < 0 || n > math.MaxInt64/u.mult {
			break
		}
		return n * u.mult, nil
	}
	return 0, fmt.Errorf("%q is not a size such as 512MiB, 2GiB or a number of bytes", s)
}

// tlsCheck refuses configurations that would expose secrets or not do what
// they say.
func (c *ServeConfig) tlsCheck(auth *flight.Auth, certs bool) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both")
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return errors.New("--tls-client-ca needs --tls-cert and --tls-key: mutual TLS is TLS")
	}
	if certs && c.TLSClientCA == "" {
		return errors.New("--auth-tokens lists certificates, which only --tls-client-ca (mutual TLS) can verify")
	}
	for _, addr := range []string{c.Addr, c.HTTP} {
		if addr != "" && auth != nil && c.TLSCert == "" && !c.Insecure && !loopback(addr) {
			return fmt.Errorf("refusing to serve bearer tokens in clear text on %s, which is not a loopback address: "+
				"give --tls-cert and --tls-key, listen on 127.0.0.1, or pass --insecure if a TLS proxy in front of the server encrypts the traffic", addr)
		}
	}
	return nil
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func newLogger(level string, w *os.File) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// localChildren is how the local executor runs a child: as a `flightbatch
// worker` process of this binary, so that a child that panics, runs out of
// memory or is killed fails its attempt and not the server. A mem:// store
// cannot be shared with another process; its children run in this one.
func localChildren(st *store.Store, cfg *ServeConfig, memory int64, fns *batch.Registry, fault batch.FaultFunc, log *slog.Logger) (local.RunFunc, error) {
	if strings.HasPrefix(st.URL(), "mem:") {
		log.Warn("children of a mem:// store run inside the server: a crashing child takes it down")
		w := &batch.Worker{Store: st, Functions: fns, Log: log.With("component", "worker"), Fault: fault}
		return w.RunShard, nil
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program to run its children: %w", err)
	}
	cmd := []string{self, "worker", "--log-level", cfg.LogLevel}
	if cfg.Functions != "" {
		abs, err := filepath.Abs(cfg.Functions)
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, "--functions", abs)
	}
	p := &local.Process{Command: cmd, Store: st.URL(), MemoryLimit: memory}
	return p.Run, nil
}

func (m *Main) serve(ctx context.Context, args []string) error {
	var cfg ServeConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cfg.flags(fs, m.Getenv)
	cfg.Batch.flags(fs, m.Getenv)
	cfg.Slurm.flags(fs, m.Getenv)
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, os.Stderr)
	if err != nil {
		return err
	}
	if cfg.CPUProfile != "" {
		stop, err := startCPUProfile(cfg.CPUProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer stop()
	}
	if cfg.ProgressInterval <= 0 {
		return fmt.Errorf("--progress-interval %s: give a positive duration, e.g. 5s", cfg.ProgressInterval)
	}
	if cfg.KeepResults < 0 {
		return fmt.Errorf("--keep-results %s: give a positive duration, or 0 to keep every job", cfg.KeepResults)
	}
	if cfg.Workers < 1 {
		return fmt.Errorf("--workers %d: give at least 1 child at once", cfg.Workers)
	}
	if cfg.MaxAttempts < 1 {
		return fmt.Errorf("--max-attempts %d: give at least 1 attempt per child", cfg.MaxAttempts)
	}
	if cfg.DemoShards < 1 || cfg.DemoShards > flight.MaxUploadShards {
		return fmt.Errorf("--demo-shards %d: give 1 to %d shards", cfg.DemoShards, flight.MaxUploadShards)
	}
	if cfg.DemoMB < 1 {
		return fmt.Errorf("--demo-mb %d: give at least 1 MB", cfg.DemoMB)
	}
	if cfg.ShardMB < 1 {
		return fmt.Errorf("--shard-mb %d: give a size of at least 1 MiB", cfg.ShardMB)
	}
	switch cfg.Compression {
	case "", "zstd", "lz4":
	default:
		return fmt.Errorf("--compression %q: use zstd, lz4 or nothing", cfg.Compression)
	}
	var auth *flight.Auth
	if cfg.AuthTokens != "" {
		if auth, err = flight.LoadAuth(cfg.AuthTokens, log); err != nil {
			return fmt.Errorf("--auth-tokens: %w", err)
		}
	}
	if err := cfg.tlsCheck(auth, auth.HasCertificates()); err != nil {
		return err
	}
	var tlsFiles *tlsfiles.Server
	if cfg.TLSCert != "" {
		if tlsFiles, err = tlsfiles.NewServer(cfg.TLSCert, cfg.TLSKey, cfg.TLSClientCA, log.With("component", "tls")); err != nil {
			return err
		}
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	// Temporary files of writes that a killed process never finished.
	if n, err := check.CleanTemps(ctx, st, check.DefaultTempAge); err != nil {
		log.Warn("clean stale temporary files", "err", err)
	} else if n > 0 {
		log.Info("deleted stale temporary files", "files", n, "older_than", check.DefaultTempAge)
	}
	var mets *metrics.Metrics
	if cfg.HTTP != "" {
		mets = metrics.New()
		st.ObserveErrors(mets.StoreError)
	}
	cat := dataset.NewCatalog(st)
	if cfg.Demo {
		if err := ensureDemo(ctx, cat, cfg.DemoShards, cfg.DemoMB, log); err != nil {
			return err
		}
	}
	fns, err := newRegistry(cfg.Functions)
	if err != nil {
		return err
	}
	fault, err := batch.ParseFaults(m.Getenv("FLIGHTBATCH_FAULTS"))
	if err != nil {
		return fmt.Errorf("FLIGHTBATCH_FAULTS: %w", err)
	}
	childMemory, err := parseBytes(cfg.ChildMemory)
	if err != nil {
		return fmt.Errorf("--child-memory: %w", err)
	}
	cfgSrv := server.Config{
		Store: st, Functions: fns, Workers: cfg.Workers, Fault: fault, Log: log,
		Jobs:   batch.Options{MaxAttempts: cfg.MaxAttempts, Version: version, SaveInterval: cfg.ProgressInterval},
		Flight: flight.Options{Compression: cfg.Compression, ShardBytes: int64(cfg.ShardMB) << 20, UploadParallelism: cfg.Workers, Auth: auth, PlainFrames: !cfg.CoalesceFrames},
	}
	switch cfg.Executor {
	case "local":
		run, err := localChildren(st, &cfg, childMemory, fns, fault, log)
		if err != nil {
			return err
		}
		cfgSrv.Executor = local.New(run, cfg.Workers, nil)
	case "aws-batch":
		if cfgSrv.Executor, err = newAWSBatch(ctx, &cfg.Batch, st, fns, cfg.MaxAttempts, log); err != nil {
			return err
		}
	case "slurm":
		if cfgSrv.Executor, err = newSlurm(&cfg.Slurm, st, cfg.Functions, log); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--executor %q: use local, aws-batch or slurm", cfg.Executor)
	}
	scheme := "grpc"
	if tlsFiles != nil {
		cfgSrv.Flight.TLS = tlsFiles.Config("h2")
		scheme = "grpc+tls"
		if tlsFiles.MutualTLS() {
			cfgSrv.Flight.ClientCerts = tlsFiles
		}
	}
	if mets != nil {
		cfgSrv.Flight.Observer = mets
	}
	srv, err := server.Start(ctx, cfgSrv, cfg.Addr)
	if err != nil {
		return err
	}
	if cfg.KeepResults > 0 {
		srv.Jobs.KeepResults(cfg.KeepResults, min(max(cfg.KeepResults/10, time.Second), time.Hour))
	}
	log.Info("serving", "addr", srv.Addr, "store", st.URL(), "executor", srv.Executor.Name(), "workers", cfg.Workers, "version", version,
		"auth", auth != nil, "tls", tlsFiles != nil, "mutual_tls", tlsFiles != nil && tlsFiles.MutualTLS())
	fmt.Fprintf(m.Stdout, "flightbatch listening on %s://%s\n", scheme, srv.Addr)
	httpErr := make(chan error, 1)
	if cfg.HTTP != "" {
		mets.CollectJobs(srv.Jobs)
		hs, err := startHTTP(cfg.HTTP, console.New(console.Options{
			Jobs: srv.Jobs, Metrics: mets.Handler(), Health: srv.Flight.Healthy, Auth: auth,
			ClientCerts: cfgSrv.Flight.ClientCerts, SecureCookie: tlsFiles != nil, Log: log,
		}), tlsFiles, httpErr)
		if err != nil {
			srv.Shutdown(10 * time.Second)
			return err
		}
		defer hs.Close()
		log.Info("serving HTTP", "addr", hs.Addr, "tls", tlsFiles != nil)
		fmt.Fprintf(m.Stdout, "flightbatch http on %s\n", hs.Addr)
	}
	select {
	case err := <-srv.Done():
		srv.Jobs.Close()
		return err
	case err := <-httpErr:
		srv.Shutdown(10 * time.Second)
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	if !srv.Shutdown(10 * time.Second) {
		log.Warn("streams still open after 10s; stopping anyway")
	}
	return nil
}

// startHTTP serves h on addr, over TLS when files is set; a serving error
// goes to errc.
func startHTTP(addr string, h http.Handler, files *tlsfiles.Server, errc chan<- error) (*http.Server, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http: listen on %s: %w", addr, err)
	}
	scheme := "http"
	if files != nil {
		lis = tls.NewListener(lis, files.Config("http/1.1"))
		scheme = "https"
	}
	hs := &http.Server{Addr: scheme + "://" + lis.Addr().String(), Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("--http: %w", err)
		}
	}()
	return hs, nil
}

func ensureDemo(ctx context.Context, cat *dataset.Catalog, shards, mb int, log *slog.Logger) error {
	if _, err := cat.Get(ctx, "demo"); err == nil {
		return nil
	} else if !errors.Is(err, dataset.ErrNotFound) {
		return err
	}
	start := time.Now()
	if err := dataset.GenerateDemo(ctx, cat, "demo", dataset.DemoOptions{Shards: shards, Bytes: int64(mb) << 20}); err != nil {
		return fmt.Errorf("create demo dataset: %w", err)
	}
	log.Info("demo dataset created", "shards", shards, "mb", mb, "seconds", time.Since(start).Seconds())
	return nil
}
