package config

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse feeds arbitrary bytes to Parse: it must return a Config or an
// error, never panic or hang. Run bounded, e.g.
// go test -run '^$' -fuzz FuzzParse -fuzztime 30s ./config
func FuzzParse(f *testing.F) {
	testEnv(f)
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("a: &a [*a, *a]\nb: &b [*a, *a]\nc: [*b, *b]\n"))
	f.Add([]byte("x-a: &a {<<: *a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			if c != nil {
				t.Fatal("both a config and an error")
			}
			return
		}
		if _, err := yaml.Marshal(c); err != nil {
			t.Fatalf("marshal a parsed config: %v", err)
		}
	})
}
