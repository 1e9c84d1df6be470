package slurm

// LogDir is the log directory of e, for tests.
func LogDir(e *Executor) string { return e.opts.LogDir }

// Opts are the options of e, defaults filled in, for tests.
func Opts(e *Executor) Options { return e.opts }

// SetFullErrorShards lowers how many shards with failed attempts keep their
// errors' text once reported (batch.MaxFullErrorShards), for tests.
func SetFullErrorShards(e *Executor, n int) { e.fullErrors = n }
