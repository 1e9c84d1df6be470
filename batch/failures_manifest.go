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
// in a manifest the server holds, rewrites at each update and lists. So only
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
