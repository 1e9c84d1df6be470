package clip

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestJSONError: the errors of encoding/json keep their wording but repeat at
// most a short prefix of a value or name, however long.
func TestJSONError(t *testing.T) {
	long := strings.Repeat("9", 5000)
	var v struct {
		N int `json:"n"`
	}
	for _, tc := range []struct{ body, want string }{
		{`{"n": ` + long + `}`, `cannot unmarshal number 999`},
		{`{"n": "x"}`, `cannot unmarshal string into Go struct field .n of type int`},
		{`{"` + strings.Repeat("k", 5000) + `": 1}`, `unknown field "kkk`},
		{`{"n": 1`, `unexpected EOF`},
		{`[1]`, `cannot unmarshal array into Go value of type`},
	} {
		dec := json.NewDecoder(strings.NewReader(tc.body))
		dec.DisallowUnknownFields()
		err := dec.Decode(&v)
		if err == nil {
			t.Fatalf("%.40s: decoded", tc.body)
		}
		got := JSONError(err)
		if !strings.Contains(got, tc.want) || strings.HasPrefix(got, "json: ") || len(got) > 4*QuoteBytes+100 {
			t.Errorf("%.40s: %q (%d bytes), want it to say %q, briefly", tc.body, got, len(got), tc.want)
		}
	}
}
