package dataset

import (
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// nameRef is the form ValidName checks by hand, as the regular expression
// it replaces.
var nameRef = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,127}$`)

func wantValidName(name string) bool {
	return nameRef.MatchString(name) && !strings.Contains(name, "..")
}

func TestValidNameMatchesTheExpression(t *testing.T) {
	tests := []string{
		"", "a", "0", "demo", "demo_2", "a.b-c_d", "_a", ".a", "-a", "A", "aB", "a b", "a/b", "a..b",
		"a.", "part-00000", "é", "a\n", "a\x00", "\xff", "a\xffb",
		strings.Repeat("a", 127), strings.Repeat("a", 128), strings.Repeat("a", 129),
		"a" + strings.Repeat("-", 127), "a" + strings.Repeat("-", 128), strings.Repeat("é", 10),
	}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "az09_.-A/ \n\xffé"
	for range 2000 {
		b := make([]byte, r.IntN(140))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		tests = append(tests, string(b))
	}
	for _, name := range tests {
		if got, want := ValidName(name) == nil, wantValidName(name); got != want {
			t.Errorf("ValidName(%q) valid = %v, the expression says %v", name, got, want)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"demo", "a..b", strings.Repeat("a", 128), "_a", "a\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if got, want := ValidName(name) == nil, wantValidName(name); got != want {
			t.Errorf("ValidName(%q) valid = %v, the expression says %v", name, got, want)
		}
	})
}

// TestValidNameSaysWhy: a name of the right characters refused only for its
// ".." says so, since the expression alone would take it.
func TestValidNameSaysWhy(t *testing.T) {
	for _, name := range []string{"a..b", "x..", "a.b..c"} {
		err := ValidName(name)
		if err == nil || !strings.Contains(err.Error(), `".."`) {
			t.Errorf("ValidName(%q) = %v, want a refusal naming \"..\"", name, err)
		}
	}
}
