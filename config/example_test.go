package config

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	// The example's section types.
	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/sinks"
	_ "github.com/vaultsink/vaultsink/sinks/local"
)

const examplePath = "../deploy/config.example.yaml"

// exampleEnv provides what the example's ${VAR}s and token_env need.
func exampleEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "vt_token_org_3"), []byte("vt_secret_ORG3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	t.Setenv("VT_TOKEN_ORG_1", "vt_secret_ORG1")
	t.Setenv("VT_TOKEN_ORG_2", "vt_secret_ORG2")
}

func TestExampleConfigLoads(t *testing.T) {
	exampleEnv(t)
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Orgs) != 3 || c.Sink.Type != "local" || c.Checkpoint.Type != "file" {
		t.Fatalf("unexpected example: %d orgs, sink %q, checkpoint %q", len(c.Orgs), c.Sink.Type, c.Checkpoint.Type)
	}
	for _, o := range c.Orgs {
		r, _ := c.OrgSettings(o.ID)
		if _, err := r.Credential.Resolve(); err != nil {
			t.Errorf("org %s: %v", o.ID, err)
		}
	}
}

// The example states the default of every option it does not mark as an
// example: loading it must give exactly what the defaults give.
func TestExampleStatesDefaults(t *testing.T) {
	exampleEnv(t)
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	minimal := `
source: {base_url: https://vault.example.com/api}
orgs: [{id: org_1, token: x}]
start: 2026-06-01T00:00:00Z
sink: {type: local, path: ./out}
checkpoint: {type: file, path: ./state}
`
	d, err := Parse([]byte(minimal), "minimal")
	if err != nil {
		t.Fatal(err)
	}
	c.Orgs, d.Orgs = nil, nil
	a, _ := yaml.Marshal(c)
	b, _ := yaml.Marshal(d)
	if diff := lineDiff(string(a), string(b)); diff != "" {
		t.Errorf("the example's values differ from the defaults (-example +defaults):\n%s", diff)
	}
}

// Every option of Config, source.Config and the example's sink and
// checkpoint types appears in the example, so the example cannot fall
// behind the code.
func TestExampleDocumentsEveryOption(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	nodePaths(doc.Content[0], "", have)

	want := map[string]bool{}
	typePaths(reflect.TypeFor[Config](), "", want)
	sc, err := sinks.New("local")
	if err != nil {
		t.Fatal(err)
	}
	typePaths(reflect.TypeOf(sc).Elem(), "sink", want)
	cc, err := checkpoint.New("file")
	if err != nil {
		t.Fatal(err)
	}
	typePaths(reflect.TypeOf(cc).Elem(), "checkpoint", want)

	var missing []string
	for p := range want {
		if !have[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("deploy/config.example.yaml does not document:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(want) < 60 {
		t.Errorf("only %d options found by reflection; the walk is broken", len(want))
	}
}

func nodePaths(n *yaml.Node, path string, out map[string]bool) {
	if path != "" {
		out[path] = true
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			nodePaths(n.Content[i+1], join(path, n.Content[i].Value), out)
		}
	case yaml.SequenceNode:
		for _, e := range n.Content {
			nodePaths(e, path+"[]", out)
		}
	}
}

// typePaths lists the YAML paths of t's options; leaves are values the
// decoder treats as one scalar (or a list or map of them).
func typePaths(t reflect.Type, path string, out map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if path != "" {
		out[path] = true
	}
	switch t {
	case durationType, timeType, secretType, sinkType, checkpointType:
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for name, idx := range fieldsOf(t) {
			typePaths(t.FieldByIndex(idx).Type, join(path, name), out)
		}
	case reflect.Slice:
		if e := t.Elem(); e.Kind() == reflect.Struct {
			typePaths(e, path+"[]", out)
			delete(out, path+"[]")
		}
	}
}

// lineDiff lists the lines of a and b that the other lacks; enough to
// point at an option whose stated default is wrong.
func lineDiff(a, b string) string {
	count := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ca, cb := count(a), count(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if cb[l] == 0 {
			out = append(out, "-"+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if ca[l] == 0 {
			out = append(out, "+"+l)
		}
	}
	return strings.Join(out, "\n")
}
