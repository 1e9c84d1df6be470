package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClip(t *testing.T) {
	long := strings.Repeat("é", 100_000)
	cases := []struct {
		name, in     string
		wantString   string
		wantQuote    string
		stringMaxLen int
	}{
		{name: "short", in: "demo", wantString: "demo", wantQuote: `"demo"`},
		{name: "exact", in: strings.Repeat("a", QuoteBytes), wantString: strings.Repeat("a", QuoteBytes), wantQuote: `"` + strings.Repeat("a", QuoteBytes) + `"`},
		{name: "long-ascii", in: strings.Repeat("a", 100_000), wantString: strings.Repeat("a", QuoteBytes) + "... (100000 bytes)", wantQuote: `"` + strings.Repeat("a", QuoteBytes) + `"... (100000 bytes)`},
		{name: "long-multibyte", in: long, wantString: strings.Repeat("é", QuoteBytes/2) + "... (200000 bytes)", wantQuote: `"` + strings.Repeat("é", QuoteBytes/2) + `"... (200000 bytes)`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := String(c.in, QuoteBytes); got != c.wantString || !utf8.ValidString(got) {
				t.Errorf("String = %q, want %q", got, c.wantString)
			}
			if got := Quote(c.in); got != c.wantQuote {
				t.Errorf("Quote = %q, want %q", got, c.wantQuote)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 3, "abc"},
		{"abcdef", 4, "abcd"},
		{"aé€", 2, "a"},  // é is 2 bytes: cut before it
		{"aé€", 3, "aé"}, // up to its end
		{"aé€", 5, "aé"}, // € is 3 bytes
		{"€", 0, ""},
	} {
		if got := Prefix(c.s, c.n); got != c.want {
			t.Errorf("Prefix(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}
