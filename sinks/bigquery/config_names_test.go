package bigquery

import (
	"strings"
	"testing"
)

// TestNameLengths: the name limits, checked apart from the patterns, hold
// at their edges, in characters (not bytes).
func TestNameLengths(t *testing.T) {
	cases := []struct {
		what string
		ok   bool
		got  bool
	}{
		{"dataset of 1000", true, fits(reDataset, strings.Repeat("d", 1000), 1000)},
		{"dataset of 1001", false, fits(reDataset, strings.Repeat("d", 1001), 1000)},
		{"empty dataset", false, fits(reDataset, "", 1000)},
		{"dataset with a dash", false, fits(reDataset, "a-b", 1000)},
		{"table of 1000 non-ASCII letters", true, fits(reTable, strings.Repeat("é", 1000), 1000)},
		{"table of 1001", false, fits(reTable, strings.Repeat("é", 1001), 1000)},
		{"table with a slash", false, fits(reTable, "a/b", 1000)},
		{"label key of 63", true, fits(reLabel, "k"+strings.Repeat("é", 62), 63)},
		{"label key of 64", false, fits(reLabel, "k"+strings.Repeat("é", 63), 63)},
		{"label key starting with a digit", false, fits(reLabel, "1k", 63)},
		{"empty label value", true, fits(reLabelV, "", 63)},
		{"label value of 63", true, fits(reLabelV, strings.Repeat("v", 63), 63)},
		{"label value of 64", false, fits(reLabelV, strings.Repeat("v", 64), 63)},
		{"label value with an upper-case letter", false, fits(reLabelV, "V", 63)},
	}
	for _, c := range cases {
		if c.got != c.ok {
			t.Errorf("%s: fits = %v, want %v", c.what, c.got, c.ok)
		}
	}
}
