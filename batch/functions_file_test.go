package batch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
)

func TestParseFunctions(t *testing.T) {
	dir := t.TempDir()
	fns, err := ParseFunctions([]byte(`{
		"peaks": {"command": ["python3", "fn/peaks.py"], "description": "peaks", "image": "fb-python:1"},
		"local_bin": {"command": ["./bin/tool", "--x"]},
		"abs": {"command": ["/usr/bin/env"]}
	}`), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(fns) != 3 {
		t.Fatalf("got %d functions", len(fns))
	}
	p := fns[0]
	if p.Name() != "peaks" || p.Description() != "peaks" || p.Image() != "fb-python:1" || ImageOf(p) != "fb-python:1" {
		t.Errorf("peaks: %s %q %q", p.Name(), p.Description(), p.Image())
	}
	if got := p.Command(); got[0] != "python3" || got[1] != "fn/peaks.py" || p.Dir() != dir {
		t.Errorf("peaks runs %v in %s, want python3 fn/peaks.py in %s", got, p.Dir(), dir)
	}
	if got := fns[1].Command()[0]; got != filepath.Join(dir, "bin/tool") {
		t.Errorf("a relative program resolves to %s, want it under %s", got, dir)
	}
	if got := fns[2].Command()[0]; got != "/usr/bin/env" {
		t.Errorf("an absolute program became %s", got)
	}
}

func TestParseFunctionsStrict(t *testing.T) {
	for body, want := range map[string]string{
		`[]`:                                                 "one JSON object",
		`{"a": {"command": ["x"]}} {}`:                       "more than one",
		`{"a": {"command": ["x"], "shell": 1}}`:              "unknown field",
		`{"a": {"command": []}}`:                             "must name a program",
		`{"a": {"command": [""]}}`:                           "must name a program",
		`{"a": {}}`:                                          "must name a program",
		`{"a": {"command": "x y"}}`:                          "cannot unmarshal",
		`{"A": {"command": ["x"]}}`:                          "must match",
		`{"a/b": {"command": ["x"]}}`:                        "must match",
		`{"..": {"command": ["x"]}}`:                         "must match",
		`{"a b": {"command": ["x"]}}`:                        "must match",
		`{"_a": {"command": ["x"]}}`:                         "must match",
		`{"a": {"command": ["x"]}, "a": {"command": ["y"]}}`: "twice",
		`{"a": {"command": ["x"]}`:                           "not JSON",
	} {
		_, err := ParseFunctions([]byte(body), "")
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want ErrInvalid saying %q", body, err, want)
		}
	}
	if !ValidFunctionName(strings.Repeat("a", 64)) || ValidFunctionName(strings.Repeat("a", 65)) {
		t.Error("names are 1 to 64 characters")
	}
}

func TestReadFunctionsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "functions.json")
	if err := os.WriteFile(path, []byte(`{"x": {"command": ["./x.sh"]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	fns, err := ReadFunctionsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fns[0].Command()[0] != filepath.Join(dir, "x.sh") {
		t.Errorf("command %v", fns[0].Command())
	}
	if _, err := ReadFunctionsFile(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("a missing file is no error")
	}
}

func TestRegistryGetNames(t *testing.T) {
	r := NewRegistry()
	for _, name := range []string{"../psd", "psd/x", "a b", "/bin/sh", "", "PSD"} {
		if _, err := r.Get(name); !errors.Is(err, ErrInvalid) {
			t.Errorf("Get(%q): error %v, want ErrInvalid", name, err)
		}
	}
	if _, err := r.Get("peaks"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(peaks): error %v, want ErrNotFound", err)
	}
	f, err := NewExternal("peaks", ExternalSpec{Command: []string{"x"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(f); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get("peaks"); err != nil {
		t.Fatal(err)
	}
	if err := r.Register(f); !errors.Is(err, ErrInvalid) {
		t.Errorf("a name registered twice: error %v, want ErrInvalid", err)
	}
	if r.Default() != "" {
		t.Errorf("default %q before SetDefault", r.Default())
	}
	if err := r.SetDefault("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetDefault of an unregistered function: %v", err)
	}
	if err := r.SetDefault("peaks"); err != nil || r.Default() != "peaks" {
		t.Errorf("SetDefault(peaks): %v, default %q", err, r.Default())
	}
}

func TestSchemaDiff(t *testing.T) {
	f64 := arrow.PrimitiveTypes.Float64
	a := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}, {Name: "peak", Type: f64}, {Name: "slope", Type: f64}}, nil)
	b := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.BinaryTypes.String}, {Name: "peak", Type: arrow.BinaryTypes.String}, {Name: "extra", Type: f64}}, nil)
	got := strings.Join(schemaDiff(a, b), "; ")
	for _, want := range []string{`field "peak" is utf8, not float64`, `field "slope" (float64) is missing`, `field "extra" (float64) is extra`} {
		if !strings.Contains(got, want) {
			t.Errorf("diff %q does not say %q", got, want)
		}
	}
	c := arrow.NewSchema([]arrow.Field{a.Field(1), a.Field(0), a.Field(2)}, nil)
	if got := strings.Join(schemaDiff(a, c), "; "); !strings.Contains(got, "another order") {
		t.Errorf("diff %q", got)
	}
}
