package batch

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// functionNameRef is the form ValidFunctionName checks by hand, as the
// regular expression it replaces.
var functionNameRef = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

func TestValidFunctionNameMatchesTheExpression(t *testing.T) {
	tests := []string{
		"", "a", "0", "psd", "peaks_2", "a-b_c", "_a", "-a", "a.b", "A", "a b", "a/b", "../x",
		"é", "a\n", "a\x00", "\xff", strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 65),
		"a" + strings.Repeat("_", 63), "a" + strings.Repeat("_", 64),
	}
	r := rand.New(rand.NewPCG(3, 4))
	const alphabet = "az09_-.A/ \n\xffé"
	for range 2000 {
		b := make([]byte, r.IntN(72))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		tests = append(tests, string(b))
	}
	for _, name := range tests {
		if got, want := ValidFunctionName(name), functionNameRef.MatchString(name); got != want {
			t.Errorf("ValidFunctionName(%q) = %v, the expression says %v", name, got, want)
		}
	}
}

func FuzzValidFunctionName(f *testing.F) {
	for _, s := range []string{"psd", "_a", strings.Repeat("a", 64), "a\xff", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidFunctionName(name), functionNameRef.MatchString(name); got != want {
			t.Errorf("ValidFunctionName(%q) = %v, the expression says %v", name, got, want)
		}
	})
}
