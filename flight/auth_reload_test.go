package flight_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/flight"
)

// TestTokenFileEdits edits the token file of a running server: a token
// removed from it is refused at once, a role changed takes effect, a file
// that does not parse keeps the callers of the last one that did, and a file
// that lists nobody lets nobody in.
func TestTokenFileEdits(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	mod := time.Now().Add(-time.Hour)
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		// Each edit a second later, as on a file system with a coarse clock.
		mod = mod.Add(time.Second)
		if err := os.Chtimes(file, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	alice := flight.TokenLine("alice", "alice-secret", flight.RoleSubmit)
	bob := flight.TokenLine("bob", "bob-secret", flight.RoleSubmit)
	bobRead := flight.TokenLine("bob", "bob-secret", flight.RoleRead)
	write(`{"tokens": [` + alice + `,` + bob + `]}`)
	a, err := flight.LoadAuth(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	type want map[string]flight.Role // token -> role; absent: refused
	for _, step := range []struct {
		name, file string
		want       want
	}{
		{"as started", "", want{"alice-secret": flight.RoleSubmit, "bob-secret": flight.RoleSubmit}},
		{"alice revoked", `{"tokens": [` + bob + `]}`, want{"bob-secret": flight.RoleSubmit}},
		{"bob made a reader", `{"tokens": [` + bobRead + `]}`, want{"bob-secret": flight.RoleRead}},
		{"half-written", `{"tokens": [` + alice[:20], want{"bob-secret": flight.RoleRead}},
		{"alice back", `{"tokens": [` + alice + `]}`, want{"alice-secret": flight.RoleSubmit}},
		{"nobody", `{"tokens": []}`, want{}},
	} {
		if step.file != "" {
			write(step.file)
		}
		for _, tok := range []string{"alice-secret", "bob-secret"} {
			c, ok := a.AuthenticateToken(tok)
			role, wantOK := step.want[tok]
			if ok != wantOK || (ok && c.Role != role) {
				t.Errorf("%s: token %s: caller %+v, let in %v; want let in %v with role %v", step.name, tok, c, ok, wantOK, role)
			}
		}
	}
}
