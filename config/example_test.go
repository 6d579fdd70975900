package config

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vaultsink/vaultsink/internal/yamlstrict"

	// The example's section types.
	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/sinks"
	_ "github.com/vaultsink/vaultsink/sinks/bigquery"
	_ "github.com/vaultsink/vaultsink/sinks/local"
	_ "github.com/vaultsink/vaultsink/sinks/s3"
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
		if _, err := r.Org.Credential.Resolve(); err != nil {
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

// Every option of Config (source, orgs and their overrides, the top
// level), and of every sink and checkpoint store (the packages cmd/vaultsink/types.go registers),
// appears in the example: in the active sections or in a commented-out
// alternative one. So the example cannot fall behind the code.
func TestExampleDocumentsEveryOption(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	docs := []*yaml.Node{parseExample(t, data)}
	for _, alt := range alternativeSections(string(data)) {
		docs = append(docs, parseExample(t, []byte(alt)))
	}
	have := map[string]bool{}
	for _, d := range docs {
		sectionPaths(d.Content[0], have)
	}

	want := map[string]bool{}
	typePaths(reflect.TypeFor[Config](), "", want)
	nSinks := registeredPaths(t, "sink", sinks.Types(), newSink, want)
	nStores := registeredPaths(t, "checkpoint", checkpoint.Types(), newCheckpoint, want)
	if nSinks < 3 || nStores < 2 {
		t.Fatalf("%d sinks and %d checkpoint stores registered; the sink packages are not all imported", nSinks, nStores)
	}

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
	if len(want) < 130 {
		t.Errorf("only %d options found by reflection; the walk is broken", len(want))
	}
}

// registeredPaths adds the options of every registered type of a section
// as "kind(type).key", leaving out this package's test types, and returns
// how many types it walked.
func registeredPaths(t *testing.T, kind string, names []string, newCfg func(string) (any, error), want map[string]bool) int {
	t.Helper()
	own := reflect.TypeFor[Config]().PkgPath()
	n := 0
	for _, name := range names {
		cfg, err := newCfg(name)
		if err != nil {
			t.Fatal(err)
		}
		if typ := reflect.TypeOf(cfg).Elem(); typ.PkgPath() != own {
			typePaths(typ, kind+"("+name+")", want)
			n++
		}
	}
	return n
}

// TestExampleAlternativesLoad: each commented-out section of the example,
// put in place of the active one, loads, and states the defaults of every
// key it does not mark as an example.
func TestExampleAlternativesLoad(t *testing.T) {
	exampleEnv(t)
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	alts := alternativeSections(string(data))
	if len(alts) < 3 {
		t.Fatalf("%d commented-out sections in the example, want the s3 and bigquery sinks and the s3 store", len(alts))
	}
	for _, alt := range alts {
		full := parseExample(t, []byte(alt)).Content[0]
		kind := full.Content[0].Value // sink or checkpoint
		name := kind + " " + sectionType(full.Content[1], kind)
		t.Run(name, func(t *testing.T) {
			c, err := Parse(replaceSection(t, data, full), examplePath+" with "+name)
			if err != nil {
				t.Fatal(err)
			}
			// Keep only the keys marked "example" (and the type): what
			// loads must equal the full section.
			var min []string
			for _, l := range strings.Split(alt, "\n") {
				if l == kind+":" || strings.Contains(l, "# example") || strings.HasPrefix(strings.TrimSpace(l), "type:") {
					min = append(min, l)
				}
			}
			d, err := Parse(replaceSection(t, data, parseExample(t, []byte(strings.Join(min, "\n"))).Content[0]), "minimal "+name)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := yaml.Marshal(map[string]any{kind: section(c, kind)})
			b, _ := yaml.Marshal(map[string]any{kind: section(d, kind)})
			if diff := lineDiff(string(a), string(b)); diff != "" {
				t.Errorf("the section's values differ from the defaults (-example +defaults):\n%s", diff)
			}
		})
	}
}

func section(c *Config, kind string) any {
	if kind == "sink" {
		return c.Sink
	}
	return c.Checkpoint
}

// alternativeSections returns the example's commented-out sections,
// uncommented: a "# sink:" or "# checkpoint:" line and the "#   " lines
// after it.
func alternativeSections(text string) []string {
	var out []string
	var cur []string
	flush := func() {
		if cur != nil {
			out = append(out, strings.Join(cur, "\n")+"\n")
			cur = nil
		}
	}
	for _, l := range strings.Split(text, "\n") {
		switch {
		case l == "# sink:" || l == "# checkpoint:":
			flush()
			cur = []string{strings.TrimPrefix(l, "# ")}
		case cur != nil && strings.HasPrefix(l, "#   "):
			cur = append(cur, strings.TrimPrefix(l, "# "))
		default:
			flush()
		}
	}
	flush()
	return out
}

func parseExample(t *testing.T, data []byte) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%v in:\n%s", err, data)
	}
	if doc.Kind != yaml.DocumentNode || doc.Content[0].Kind != yaml.MappingNode {
		t.Fatalf("not a mapping:\n%s", data)
	}
	return &doc
}

// replaceSection returns the example with its top-level key given by the
// one-key mapping alt replaced by alt's value (and, for a sink, without the
// orgs' sink overrides).
func replaceSection(t *testing.T, example []byte, alt *yaml.Node) []byte {
	t.Helper()
	doc := parseExample(t, example)
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i].Value; {
		case k == alt.Content[0].Value:
			root.Content[i+1] = alt.Content[1]
		case k == "orgs" && alt.Content[0].Value == "sink":
			// An org's sink override holds keys of the active sink type.
			for _, org := range root.Content[i+1].Content {
				for j := 0; j+1 < len(org.Content); j += 2 {
					if org.Content[j].Value == "sink" {
						org.Content = append(org.Content[:j], org.Content[j+2:]...)
						break
					}
				}
			}
		}
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sectionType is the type a sink or checkpoint section chooses.
func sectionType(n *yaml.Node, kind string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "type" {
			return n.Content[i+1].Value
		}
	}
	if kind == "checkpoint" {
		return DefaultCheckpoint
	}
	return ""
}

// sectionPaths adds the YAML paths of a document to out, with the top-level
// sink and checkpoint keys under "sink(TYPE)" and "checkpoint(TYPE)".
func sectionPaths(root *yaml.Node, out map[string]bool) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i].Value, root.Content[i+1]
		out[k] = true
		if (k == "sink" || k == "checkpoint") && v.Kind == yaml.MappingNode {
			k += "(" + sectionType(v, k) + ")"
		}
		nodePaths(v, k, out)
	}
}

func nodePaths(n *yaml.Node, path string, out map[string]bool) {
	if path != "" {
		out[path] = true
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			nodePaths(n.Content[i+1], subPath(path, n.Content[i].Value), out)
		}
	case yaml.SequenceNode:
		for _, e := range n.Content {
			nodePaths(e, path+"[]", out)
		}
	}
}

func subPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
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
	case reflect.TypeFor[time.Duration](), timeType, secretType, sinkType, checkpointType:
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		for name, idx := range yamlstrict.Fields(t) {
			typePaths(t.FieldByIndex(idx).Type, subPath(path, name), out)
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
