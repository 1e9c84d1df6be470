package slurm

// LogDir is the log directory of e, for tests.
func LogDir(e *Executor) string { return e.opts.LogDir }
