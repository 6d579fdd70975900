package bqtest

import (
	"strings"
	"testing"
)

// TestParseJSON: BigQuery's JSON limits as PARSE_JSON applies them.
func TestParseJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tc := range []struct {
		in, mode, want, err string
	}{
		{`{"a": 1, "b": [true, null, "x"]}`, "", `{"a":1,"b":[true,null,"x"]}`, ""},
		{`{"a":1,"a":2}`, "", `{"a":1}`, ""}, // a duplicate key keeps the first
		{`{"a":{"k":1,"k":{"z":2}}}`, "", `{"a":{"k":1}}`, ""},
		{deep(500), "", deep(500), ""},
		{deep(501), "", "", "nesting depth exceeds"},
		{`{"n":1e400}`, "round", "", "number overflow"},
		{`{"n":-1e400}`, "exact", "", "number overflow"},
		{`{"n":123456789012345678901234}`, "exact", "", "without loss of precision"},
		{`{"n":123456789012345678901234}`, "round", `{"n":1.2345678901234569e+23}`, ""},
		{`{"n":18446744073709551615}`, "exact", `{"n":18446744073709551615}`, ""},
		{`{"n":0.1}`, "exact", `{"n":0.1}`, ""},
		{`{"n":1e-400}`, "round", `{"n":0}`, ""},
		{`{"a":}`, "", "", "Invalid input"},
		{`{"a":1} x`, "", "", "after the JSON value"},
		{`"\u00e9\n"`, "", `"\u00e9\n"`, ""},
	} {
		got, err := parseJSON(tc.in, tc.mode)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseJSON(%.40s, %q) = %q, %v; want an error with %q", tc.in, tc.mode, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseJSON(%.40s, %q) = %q, %v; want %q", tc.in, tc.mode, got, err, tc.want)
		}
	}
}
