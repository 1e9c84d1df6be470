package flight

import (
	"unicode/utf8"

	"github.com/flightbatch/flightbatch/batch"
)

// The bounds of a request, checked before any work starts. The bounds of the
// psd parameters themselves (nperseg, nfft, bands, names) are where those are
// validated, in the compute and psd packages.
const (
	// MaxActionBodyBytes bounds the body of an action.
	MaxActionBodyBytes = 1 << 20
	// MaxTicketBytes bounds a ticket and a DoPut command descriptor.
	MaxTicketBytes = 64 << 10
	// MaxJSONDepth bounds the nesting of arrays and objects in any JSON a
	// request carries.
	MaxJSONDepth = 32
	// MaxStatusFailures bounds the shards a job-status or list-jobs entry
	// lists in "failures" (the first ones in shard order; "failures_total"
	// counts them all): with each attempt's error bounded in the manifest
	// (batch.MaxAttemptErrorBytes), an answer stays bounded however many of
	// a job's shards failed. 100 shards show whether the failures share a
	// cause; the job's attempt records in the store hold the rest. They are
	// the shards whose errors the manifest keeps (batch.MaxFullErrorShards).
	MaxStatusFailures = batch.MaxFullErrorShards
)

// checkJSONBounds refuses, with InvalidArgument, JSON text longer than
// maxBytes, nested deeper than MaxJSONDepth, or not UTF-8 (which Go's
// decoder would read, each bad byte as U+FFFD, into a name that is not the
// one sent), before it is decoded. It does not otherwise check the text;
// the decoder does.
func checkJSONBounds(what string, b []byte, maxBytes int) error {
	if len(b) > maxBytes {
		return invalidArg("%s is %d bytes; the limit is %d", what, len(b), maxBytes)
	}
	if !utf8.Valid(b) {
		at := 0
		for at < len(b) {
			r, n := utf8.DecodeRune(b[at:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			at += n
		}
		return invalidArg("%s is not UTF-8 text (byte %d of %d is not); JSON must be UTF-8", what, at, len(b))
	}
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			if depth > MaxJSONDepth {
				return invalidArg("%s nests arrays and objects more than %d deep", what, MaxJSONDepth)
			}
		case c == ']' || c == '}':
			depth--
		}
	}
	return nil
}
