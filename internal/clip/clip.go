// Package clip shortens text from a request or the store before an error
// message repeats it, so that a message quotes at most a short prefix of its
// input however large the input is.
package clip

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// QuoteBytes is how much of a value Quote repeats.
const QuoteBytes = 64

// Prefix returns the longest start of s of at most n bytes that ends at a
// rune boundary: s itself if it holds at most n bytes.
func Prefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := max(n, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// String returns s if it holds at most n bytes; otherwise its first n bytes
// (cut at a rune boundary) followed by a note of the length left out.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return Prefix(s, n) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// Quote is %q of s with s cut by String to QuoteBytes.
func Quote(s string) string {
	if len(s) <= QuoteBytes {
		return strconv.Quote(s)
	}
	return strconv.Quote(Prefix(s, QuoteBytes)) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// JSONError is the text of an error of encoding/json, without its "json: "
// prefix, with the value or field name it repeats cut by String or Quote:
// Go's messages quote a whole number literal ("cannot unmarshal number
// 99999...") or an unknown field's whole name.
func JSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		into := "Go value"
		if te.Struct != "" || te.Field != "" {
			into = "Go struct field " + String(te.Struct+"."+te.Field, QuoteBytes)
		}
		return "cannot unmarshal " + String(te.Value, QuoteBytes) + " into " + into + " of type " + te.Type.String()
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if rest, ok := strings.CutPrefix(msg, "unknown field "); ok {
		if name, uerr := strconv.Unquote(rest); uerr == nil {
			return "unknown field " + Quote(name)
		}
	}
	return String(msg, 4*QuoteBytes)
}
