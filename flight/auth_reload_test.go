package flight_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/flight"
)

// clock is a settable clock for the token file's checks.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestTokenFileEdits edits the token file of a running server: a token
// removed from it is refused once the next check is due, a role changed
// takes effect, a file that does not parse keeps the callers of the last one
// that did, and a file that lists nobody lets nobody in.
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
	clk := &clock{now: time.Unix(1e9, 0)}
	a, err := flight.LoadAuthFile(file, flight.AuthFileOptions{Now: clk.Now})
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
			clk.Add(flight.DefaultAuthCheckEvery)
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

// TestTokenFileCheckedAtMostOncePerInterval: between checks the file is not
// looked at (an edit, even a deletion, changes nothing), and the first call
// after the interval sees the edit; a file gone keeps the last callers.
func TestTokenFileCheckedAtMostOncePerInterval(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens.json")
	alice := flight.TokenLine("alice", "alice-secret", flight.RoleSubmit)
	bob := flight.TokenLine("bob", "bob-secret", flight.RoleRead)
	if err := os.WriteFile(file, []byte(`{"tokens": [`+alice+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	clk := &clock{now: time.Unix(1e9, 0)}
	const every = 3 * time.Second
	a, err := flight.LoadAuthFile(file, flight.AuthFileOptions{Now: clk.Now, CheckEvery: every})
	if err != nil {
		t.Fatal(err)
	}
	let := func(tok string) bool {
		_, ok := a.AuthenticateToken(tok)
		return ok
	}
	edit := func(body string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(file, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	edit(`{"tokens": [`+bob+`]}`, time.Now().Add(time.Hour))
	for i := 0; i < 100; i++ {
		if !let("alice-secret") || let("bob-secret") {
			t.Fatalf("call %d within the interval: the edited file was read (alice %v, bob %v)", i, let("alice-secret"), let("bob-secret"))
		}
	}
	clk.Add(every - time.Millisecond)
	if !let("alice-secret") {
		t.Fatal("just before the interval ends: the edited file was read")
	}
	clk.Add(time.Millisecond)
	if let("alice-secret") || !let("bob-secret") {
		t.Fatalf("after the interval: alice %v, bob %v; want the edit (bob only)", let("alice-secret"), let("bob-secret"))
	}
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	clk.Add(every)
	if !let("bob-secret") {
		t.Fatal("a token file gone: want the callers last read kept")
	}
}
