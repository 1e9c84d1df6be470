package slurm

// LogDir is the log directory of e, for tests.
func LogDir(e *Executor) string { return e.opts.LogDir }

// Opts are the options of e, defaults filled in, for tests.
func Opts(e *Executor) Options { return e.opts }
