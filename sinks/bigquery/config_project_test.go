package bigquery

import (
	"strings"
	"testing"
)

// TestProjectMessages: a refused project id is told which rule it breaks,
// and the whole rule.
func TestProjectMessages(t *testing.T) {
	for _, tc := range []struct{ project, want string }{
		{"p", `"p" is too short (1 of at least 6 characters)`},
		{"My-Project", "upper-case letters"},
		{"123456789012", "starts with '1', not a letter (a project number is not the project id)"},
		{"my_project", "holds '_'"},
		{"my-project-", "ends with a hyphen"},
		{strings.Repeat("p", 31), "too long (31 of at most 30 characters)"},
		{"Example.com:my-project", `"Example.com" before the colon is not a domain name`},
		{"example.com:", "it is empty"},
	} {
		t.Run(tc.project, func(t *testing.T) {
			c := Config{Project: tc.project, Dataset: "audit"}
			c.SetDefaults()
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range []string{"project: ", tc.want, "6-30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen", "example.com:my-project"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
	for _, ok := range []string{"my-project", "a12345", "example.com:my-project", strings.Repeat("p", 30)} {
		c := Config{Project: ok, Dataset: "audit"}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}
