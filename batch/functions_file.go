package batch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ReadFunctionsFile reads the operator's functions file, a JSON object of
// name -> {"command": [...], "description": "...", "image": "..."}. Relative
// paths in commands resolve against the file's directory. The file is checked
// strictly: unknown keys, a repeated or malformed name, or an empty command are
// errors; a name already registered (a built-in analysis's) is refused at registration.
func ReadFunctionsFile(path string) ([]*External, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("functions file: %w", err)
	}
	fns, err := ParseFunctions(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("functions file %s: %w", path, err)
	}
	return fns, nil
}

// ParseFunctions decodes a functions file's content; dir is the directory its
// relative paths resolve against. Functions come back in the file's order.
func ParseFunctions(data []byte, dir string) ([]*External, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, invalidf("not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, invalidf(`the file must hold one JSON object: {"name": {"command": ["program", "arg"], "description": "..."}}`)
	}
	var out []*External
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalidf("not JSON: %v", err)
		}
		name := tok.(string)
		if seen[name] {
			return nil, invalidf("function %q is defined twice", name)
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalidf("function %q: %v", name, err)
		}
		var spec ExternalSpec
		sd := json.NewDecoder(bytes.NewReader(raw))
		sd.DisallowUnknownFields()
		if err := sd.Decode(&spec); err != nil {
			return nil, invalidf("function %q: %s (the keys are command, description and image)", name, strings.TrimPrefix(err.Error(), "json: "))
		}
		f, err := NewExternal(name, spec, dir)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalidf("not JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalidf("the file holds more than one JSON value")
	}
	return out, nil
}
