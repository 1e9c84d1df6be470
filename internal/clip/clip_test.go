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
