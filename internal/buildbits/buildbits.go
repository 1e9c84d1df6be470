// Package buildbits lets a package's tests compare the bits of its results
// between two builds of it, e.g. one built with GOAMD64=v1 and one with
// GOAMD64=v3, the level from which the compiler may fuse a multiply and an
// add into one multiply-add (one rounding instead of two).
//
// A test names its cases and the digest of each case's results; Compare
// writes them, or checks them against those another build wrote:
//
//	FLIGHTBATCH_BITS_OUT=dir go test -run '^TestBitsAcrossBuilds$' ./compute/   # GOAMD64=v1
//	FLIGHTBATCH_BITS_WANT=dir go test -run '^TestBitsAcrossBuilds$' ./compute/  # GOAMD64=v3
//
// Each package writes its own file, dir/<package>, so one directory serves
// several packages tested together. scripts/test.sh runs the pair.
package buildbits

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The environment variables that name the directory Compare writes to and
// the one it checks against.
const (
	OutEnv  = "FLIGHTBATCH_BITS_OUT"
	WantEnv = "FLIGHTBATCH_BITS_WANT"
)

// Digest is the digest of one case's results.
type Digest struct {
	// Name names the case; unique within a package, without spaces.
	Name string
	// Sum is the hex digest of the case's bits.
	Sum string
}

// Hash returns the Digest named name of what write writes into a SHA-256
// hash (the first 12 bytes, in hex).
func Hash(name string, write func(h hash.Hash)) Digest {
	h := sha256.New()
	write(h)
	return Digest{name, hex.EncodeToString(h.Sum(nil)[:12])}
}

// Compare skips t unless FLIGHTBATCH_BITS_OUT or FLIGHTBATCH_BITS_WANT is
// set; otherwise it computes the digests, writes them to
// $FLIGHTBATCH_BITS_OUT/pkg and checks them against
// $FLIGHTBATCH_BITS_WANT/pkg: the same cases, each with the same digest.
func Compare(t testing.TB, pkg string, digests func(t testing.TB) []Digest) {
	t.Helper()
	out, want := os.Getenv(OutEnv), os.Getenv(WantEnv)
	if out == "" && want == "" {
		t.Skipf("set %s or %s", OutEnv, WantEnv)
	}
	got := digests(t)
	if out != "" {
		var b strings.Builder
		for _, d := range got {
			fmt.Fprintf(&b, "%s %s\n", d.Name, d.Sum)
		}
		if err := os.WriteFile(filepath.Join(out, pkg), []byte(b.String()), 0o644); err != nil {
			t.Fatalf("writing the digests: %v", err)
		}
	}
	if want == "" {
		return
	}
	file := filepath.Join(want, pkg)
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("reading the digests to compare with: %v", err)
	}
	defer f.Close()
	ref := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, sum, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("%s: malformed line %q", file, sc.Text())
		}
		ref[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	if len(ref) != len(got) {
		t.Errorf("%s has %d cases, this build %d", file, len(ref), len(got))
	}
	for _, d := range got {
		if r, ok := ref[d.Name]; !ok {
			t.Errorf("%s: not in %s", d.Name, file)
		} else if r != d.Sum {
			t.Errorf("%s: bits differ from %s's", d.Name, file)
		}
	}
}
