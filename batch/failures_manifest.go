package batch

import (
	"strconv"
	"strings"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// The bounds of the failure text a manifest keeps for a job with many failed
// shards. MaxAttemptErrorBytes bounds one attempt's error, but a job of
// MaxShards shards that all failed, each after several attempts, still kept
// hundreds of megabytes of it (0.7 GB for 100,000 shards of three attempts)
// in a manifest the server holds, rewrites as the job runs and lists. So only
// the first MaxFullErrorShards shards with failures, in shard order (those
// job-status lists), keep each attempt's error up to MaxAttemptErrorBytes;
// every later shard keeps, per attempt, its error's first line up to
// MaxShortErrorBytes and the name of the attempt's record in the store, which
// holds the whole error.
const (
	// MaxFullErrorShards is how many shards with failed attempts keep their
	// errors' text in the manifest, as job-status lists them.
	MaxFullErrorShards = 100
	// MaxShortErrorBytes bounds the first line kept of a later shard's
	// attempt error.
	MaxShortErrorBytes = 96
)

// shortAttemptError is what the manifest keeps of the error s of attempt n of
// shard, past the first MaxFullErrorShards shards with failures: s itself if
// it is one line of at most MaxShortErrorBytes, else its first line cut to
// that, and the attempt's record in the store under AttemptsPrefix. It is
// idempotent: a short form stays as it is.
func shortAttemptError(shard string, n int, s string) string {
	ptr := " ... [whole: attempts/" + shard + "." + strconv.Itoa(n) + ".json]"
	if len(s) <= MaxShortErrorBytes+len(ptr) && strings.HasSuffix(s, ptr) && !strings.ContainsRune(s, '\n') {
		return s
	}
	line, _, multi := strings.Cut(s, "\n")
	line = strings.TrimRight(line, "\r")
	if !multi && len(line) <= MaxShortErrorBytes {
		return line
	}
	return clip.Prefix(line, MaxShortErrorBytes) + ptr
}

// boundFailures keeps the failure text of m within the bounds above: the
// first MaxFullErrorShards shards with failed attempts, in shard order, keep
// each attempt's error clipped to MaxAttemptErrorBytes; the others the short
// form.
func boundFailures(m *Manifest) {
	failed := 0
	for i := range m.Shards {
		s := &m.Shards[i]
		if len(s.Errors) == 0 {
			continue
		}
		failed++
		for j := range s.Errors {
			e := &s.Errors[j]
			if failed <= MaxFullErrorShards {
				e.Error = ClipAttemptError(e.Error)
			} else {
				e.Error = shortAttemptError(s.Name, e.Attempt, e.Error)
			}
		}
	}
}

// boundNewErrors bounds the errors of shard i, just added to (first: the
// shard had none before), as boundFailures bounds a whole manifest's, at the
// cost of what changed: the first MaxFullErrorShards shards with errors, in
// shard order, keep their text clipped, the others a short form. A shard
// that gains its first errors ahead of the last of those takes that one's
// place, whose errors are then shortened.
func (m *Manifest) boundNewErrors(i int, first bool) {
	fresh := !m.cache.valid
	c := m.caches()
	full := true
	switch {
	case fresh:
		// Derived with shard i's new errors: a shard that gained its first
		// errors among the full ones pushed the next one out.
		full = c.errShards <= MaxFullErrorShards || i <= c.fullEnd
		if first && full && c.errShards > MaxFullErrorShards {
			m.boundShardErrors(m.nextErrShard(c.fullEnd), false)
		}
	case first:
		c.errShards++
		switch {
		case c.errShards < MaxFullErrorShards:
		case c.errShards == MaxFullErrorShards:
			c.fullEnd = m.prevErrShard(len(m.Shards))
		case i > c.fullEnd:
			full = false
		default:
			last := c.fullEnd
			c.fullEnd = m.prevErrShard(last)
			m.boundShardErrors(last, false)
		}
	default:
		full = c.errShards <= MaxFullErrorShards || i <= c.fullEnd
	}
	m.boundShardErrors(i, full)
}

// nextErrShard is the index of the first shard after i with errors, or
// len(m.Shards).
func (m *Manifest) nextErrShard(i int) int {
	for i++; i < len(m.Shards) && len(m.Shards[i].Errors) == 0; i++ {
	}
	return i
}

// prevErrShard is the index of the last shard before i with errors, or -1.
func (m *Manifest) prevErrShard(i int) int {
	for i--; i >= 0 && len(m.Shards[i].Errors) == 0; i-- {
	}
	return i
}

// boundShardErrors bounds the errors of shard i: clipped if full, else in
// their short form.
func (m *Manifest) boundShardErrors(i int, full bool) {
	s := &m.Shards[i]
	m.touch(i)
	for j := range s.Errors {
		e := &s.Errors[j]
		if full {
			e.Error = ClipAttemptError(e.Error)
		} else {
			e.Error = shortAttemptError(s.Name, e.Attempt, e.Error)
		}
	}
}

// fullErrorShards names the shards, of those whose names have recorded
// errors, that keep their errors whole in a manifest of shards: the first
// MaxFullErrorShards in shard order.
func fullErrorShards(shards []ShardRecord, hasErrors map[string]bool) map[string]bool {
	full := map[string]bool{}
	for _, s := range shards {
		if len(full) == MaxFullErrorShards {
			break
		}
		if hasErrors[s.Name] {
			full[s.Name] = true
		}
	}
	return full
}
