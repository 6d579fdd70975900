package yamlstrict

import (
	"fmt"
	"strings"
	"testing"
)

// TestSyntaxErrorLine: a YAML syntax error is reported on the line that
// holds it, whatever kind of error it is. yaml.v3 alone names the line a
// construct starts on, or one line early.
func TestSyntaxErrorLine(t *testing.T) {
	head := "source:\n  base_url: http://127.0.0.1:8787/api\norgs:\n  - id: org_1\n    token: x\n"
	tests := []struct {
		name string
		tail string // appended to head, starting on line 6
		line int    // where the mistake is
	}{
		{"unclosed flow sequence", "start: 2026-06-01T00:00:00Z\nwindow: [1h\nschedule: \"*/5 * * * *\"\n", 7},
		{"unclosed quote", "start: 2026-06-01T00:00:00Z\nschedule: \"*/5 * * * *\nwindow: 1h\n", 7},
		{"tab indentation", "sink:\n  type: testsink\n\tpath: ./out\n", 8},
		{"value after a mapping value", "start: 2026-06-01T00:00:00Z\nwindow: 1h: 2h\n", 7},
		{"dedented key in a list item", "sink:\n  type: testsink\n  path: ./out\n bad: 1\n", 9},
		{"unclosed flow mapping", "sink: {type: testsink, path: ./out\nwindow: 1h\n", 6},
		{"key without a value in a list", "orgs2:\n  - id: a\n  - id: b\n  x\n", 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Document("c.yaml", []byte(head+tt.tail))
			if err == nil {
				t.Fatal("parsed")
			}
			want := fmt.Sprintf("c.yaml:%d: YAML syntax error: ", tt.line)
			if !strings.HasPrefix(err.Error(), want) {
				lines := strings.Split(head+tt.tail, "\n")
				t.Errorf("error = %v\nwant it to start with %q (line %d is %q)", err, want, tt.line, lines[tt.line-1])
			}
		})
	}
}

func TestDocument(t *testing.T) {
	tests := []struct {
		name, in string
		empty    bool
		err      string
	}{
		{"nothing", "", true, ""},
		{"only a comment", "# nothing here\n", true, ""},
		{"null", "~\n", true, ""},
		{"empty document", "---\n", true, ""},
		{"two documents", "a: 1\n---\nb: 2\n", false, "d.yaml: more than one YAML document (remove the --- separator)"},
		{"a mapping", "a: 1\n", false, ""},
		{"a list", "[1, 2]\n", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, err := Document("d.yaml", []byte(tt.in))
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (root == nil) != tt.empty {
				t.Fatalf("root = %v, want empty %v", root, tt.empty)
			}
		})
	}
}
