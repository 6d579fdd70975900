package yamlstrict

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Pair is one entry of a mapping.
type Pair struct{ Key, Val *yaml.Node }

// Pairs lists the entries of the mapping n with YAML merge keys
// (<<: *base) laid under the explicit ones; earlier merges win over later
// ones. A merge of something other than mappings is reported at path.
func (d *Decoder) Pairs(path string, n *yaml.Node) []Pair {
	var out, merged []Pair
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		out = append(out, Pair{k, v})
	}
	if len(merges) == 0 {
		return out
	}
	have := map[string]bool{}
	for _, p := range out {
		have[p.Key.Value] = true
	}
	var add func(m *yaml.Node)
	add = func(m *yaml.Node) {
		d.steps++
		if d.steps > maxSteps {
			return
		}
		if m.Kind == yaml.AliasNode {
			d.follow(path, m, "merge", add)
			return
		}
		switch m.Kind {
		case yaml.MappingNode:
			for _, p := range d.Pairs(path, m) {
				if !have[p.Key.Value] {
					have[p.Key.Value] = true
					merged = append(merged, p)
				}
			}
		case yaml.SequenceNode:
			for _, e := range m.Content {
				add(e)
			}
		default:
			d.Fail(m, path, "<<", "a merge takes a mapping or a list of mappings")
		}
	}
	for _, m := range merges {
		add(m)
	}
	return append(out, merged...)
}

// Struct decodes the mapping n into the struct v; unknown and repeated
// keys are reported. skip names a key the caller handles, which is then
// neither decoded nor unknown.
func (d *Decoder) Struct(path string, n *yaml.Node, v reflect.Value, skip string) {
	if n.Kind != yaml.MappingNode {
		d.Fail(n, path, "", "must be a mapping (key: value), not "+KindName(n))
		return
	}
	fields := Fields(v.Type())
	seen := map[string]int{}
	for _, p := range d.Pairs(path, n) {
		if skip != "" && p.Key.Kind == yaml.ScalarNode && p.Key.Value == skip {
			continue // before the repeat check: the caller reads the first
		}
		key, ok := d.key(path, p, seen)
		if !ok {
			continue
		}
		fp := join(path, key)
		idx, ok := fields[key]
		if !ok && path == "" && d.ExtensionPrefix != "" && strings.HasPrefix(key, d.ExtensionPrefix) {
			continue
		}
		if !ok {
			d.Fail(p.Key, fp, "", "unknown key (valid here: "+knownKeys(fields, skip)+")")
			continue
		}
		d.value(fp, p.Val, v.FieldByIndex(idx))
	}
}

// key returns p's key, or reports why it cannot be one: it is not a plain
// name, or it repeats one in seen (key -> line), which it is then added to.
func (d *Decoder) key(path string, p Pair, seen map[string]int) (string, bool) {
	if p.Key.Kind != yaml.ScalarNode {
		d.Fail(p.Key, path, "", "keys must be plain names, not "+KindName(p.Key))
		return "", false
	}
	key := p.Key.Value
	if line, dup := seen[key]; dup {
		d.Fail(p.Key, join(path, key), "", fmt.Sprintf("key repeated (first at line %d)", line))
		return "", false
	}
	seen[key] = p.Key.Line
	return key, true
}

func knownKeys(fields map[string][]int, extra string) string {
	keys := make([]string, 0, len(fields)+1)
	for k := range fields {
		keys = append(keys, k)
	}
	if extra != "" {
		keys = append(keys, extra)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// Fields maps the YAML keys of the struct type t to field indexes (for
// reflect.Value.FieldByIndex), the way the Decoder and yaml.v3 match them:
// the yaml tag's name, else the lowercased field name; ",inline" structs
// flattened.
func Fields(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		inline := false
		for _, o := range strings.Split(opts, ",") {
			inline = inline || o == "inline"
		}
		if inline && f.Type.Kind() == reflect.Struct {
			for k, idx := range Fields(f.Type) {
				m[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = []int{i}
	}
	return m
}

func (d *Decoder) slice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.Fail(n, path, "", "must be a list, not "+KindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		d.value(fmt.Sprintf("%s[%d]", path, i), e, s.Index(i))
	}
	v.Set(s)
}

func (d *Decoder) dict(path string, n *yaml.Node, v reflect.Value) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.Fail(n, path, "", "cannot decode into "+t.String())
		return
	}
	if n.Kind != yaml.MappingNode {
		d.Fail(n, path, "", "must be a mapping (key: value), not "+KindName(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	seen := map[string]int{}
	for _, p := range d.Pairs(path, n) {
		key, ok := d.key(path, p, seen)
		if !ok {
			continue
		}
		e := reflect.New(t.Elem()).Elem()
		d.value(join(path, key), p.Val, e)
		v.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
	}
}
