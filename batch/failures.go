package batch

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// The bounds of the failure text a manifest keeps. A failed attempt's error
// can carry a child's stderr tail (up to DefaultStderrLimit), and a job may
// have up to MaxShards shards, each tried several times: kept whole in the
// manifest, which the server holds in memory, rewrites as the job runs and
// serves in job-status and list-jobs, that text would grow with what children
// print. The manifest keeps a bounded cut; each attempt's whole error stays
// in its own record in the store (AttemptsPrefix, one object per attempt).
const (
	// MaxAttemptErrorBytes bounds the error text a manifest keeps per failed
	// attempt. A longer error keeps its start and its end, where a stderr
	// tail usually names the cause, with a note of the cut between them
	// (ClipAttemptError). 2 KiB holds an executor's whole account of an
	// attempt (Slurm's state and exit code, the worker's record, the log's
	// last lines) and the last lines of a traceback.
	MaxAttemptErrorBytes = 2 << 10
	// MaxAttemptErrorHeadBytes is how much of the start of a longer error
	// is kept, before its end: the error chain naming the function and its
	// exit status.
	MaxAttemptErrorHeadBytes = 512
	// MaxJobErrorShards is how many failed shards a job's error names, each
	// with its last attempt's (cut) error; the rest are counted.
	MaxJobErrorShards = 5
	// MaxJobErrorBytes bounds a job's error, also one kept in the store
	// before these bounds were: MaxJobErrorShards shards' errors with their
	// prefixes, and the count of the rest.
	MaxJobErrorBytes = MaxJobErrorShards*(MaxAttemptErrorBytes+128) + 128
)

// ClipAttemptError returns s if it holds at most MaxAttemptErrorBytes bytes;
// otherwise its first MaxAttemptErrorHeadBytes (what failed: the function,
// its exit status) and its end (where a stderr tail names the cause), with a
// note between them of how much was cut, MaxAttemptErrorBytes bytes in all,
// cut at rune boundaries. Bytes that are not UTF-8 (a child may print any)
// become U+FFFD first, as JSON would make them, so that the text stays within
// the bound when stored.
func ClipAttemptError(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return clipMiddle(s, MaxAttemptErrorBytes, MaxAttemptErrorHeadBytes)
}

// clipMiddle keeps the first head bytes and the last bytes of s, n bytes in
// all with the note between them.
func clipMiddle(s string, n, head int) string {
	if len(s) <= n {
		return s
	}
	first := clip.Prefix(s, head)
	note := " ...[error of " + strconv.Itoa(len(s)) + " bytes cut in the middle; the attempt's record in the store has it whole] ..."
	start := len(s) - max(n-len(first)-len(note), 0)
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return first + note + s[start:]
}

// clipJobError bounds a job's error kept before MaxJobErrorBytes was: its
// first bytes (the first shards named), cut at a rune boundary, with a note.
func clipJobError(s string) string {
	if len(s) <= MaxJobErrorBytes {
		return s
	}
	suffix := fmt.Sprintf(" ... [error cut: %d bytes; see failures]", len(s))
	return clip.Prefix(s, MaxJobErrorBytes-len(suffix)) + suffix
}

// clipErrors bounds the failure text of a manifest: each attempt's error
// (boundFailures) and the job's error. It is applied to every manifest read
// from the store, so one written before the bounds were is held and served
// bounded.
func clipErrors(m *Manifest) {
	m.Error = clipJobError(m.Error)
	boundFailures(m)
}

// jobFailureError is a failed job's error: the messages of its first failed
// shards (at most MaxJobErrorShards), and the count of the others of total.
func jobFailureError(first []string, total int) string {
	msg := strings.Join(first, "; ")
	if more := total - len(first); more > 0 {
		msg += fmt.Sprintf("; and %d more shards failed; see failures", more)
	}
	return msg
}
