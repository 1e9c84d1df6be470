package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"

	"github.com/flightbatch/flightbatch/flight"
)

const authTokensFlagHelp = `a JSON file of bearer tokens that turns authentication on ($FLIGHTBATCH_AUTH_TOKENS if set): {"tokens": [{"name": "alice", "sha256": "<hex of sha256(token)>", "role": "read" or "submit"}]}; 'flightbatch token' makes entries`

// tokenCmd prints a new random token and the line of the token file that
// lets it in.
func (m *Main) tokenCmd(args []string) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	name := fs.String("name", "", "the caller's name, logged with each job it submits")
	role := fs.String("role", "read", "read, or submit (read, and also submit and cancel jobs and upload datasets)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || fs.NArg() > 0 {
		return errors.New("token: give --name NAME (and --role read or submit)")
	}
	r, err := flight.ParseRole(*role)
	if err != nil {
		return fmt.Errorf("token: --role: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	tok := "fbt_" + base64.RawURLEncoding.EncodeToString(b)
	fmt.Fprintln(m.Stdout, tok)
	fmt.Fprintln(m.Stdout, flight.TokenLine(*name, tok, r))
	fmt.Fprintln(m.Stderr, `token: the first line is the secret token, for the caller (FLIGHTBATCH_TOKEN, --token); the second goes into the server's --auth-tokens file, in its "tokens" list`)
	return nil
}
