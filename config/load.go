package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/sinks"
)

const (
	// maxFileSize bounds what Load reads; a config is a few kilobytes.
	maxFileSize = 8 << 20
	// maxSteps bounds the nodes visited, so that aliases cannot expand a
	// small file into an enormous walk (the "billion laughs").
	maxSteps = 1 << 20
)

// Load reads the file at path, then parses, expands, defaults and
// validates it like Parse.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("read config: %s is larger than %d bytes", path, maxFileSize)
	}
	return Parse(data, path)
}

// Parse decodes data (named src in messages, usually the file name) into a
// Config: strict YAML, ${VAR} expansion in scalar values, defaults, then
// validation. Every problem is reported, joined with errors.Join, each as
// `src:line: field.path: value: why`.
func Parse(data []byte, src string) (*Config, error) {
	return parse(data, src, os.LookupEnv)
}

func parse(data []byte, src string, lookup func(string) (string, bool)) (*Config, error) {
	if src == "" {
		src = "config"
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty config", src)
		}
		return nil, syntaxError(src, data, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document (remove the --- separator)", src)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("%s: empty config", src)
	}
	d := &decoder{src: src, lookup: lookup, lines: map[string]int{}, active: map[*yaml.Node]bool{}}
	c := &Config{}
	c.SetDefaults()
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, fmt.Errorf("%s: empty config", src)
	}
	d.value("", root, reflect.ValueOf(c).Elem())
	for _, f := range d.deferred {
		f()
	}
	if c.Checkpoint.Type == "" { // no section, or an empty one
		cfg, err := checkpoint.New(DefaultCheckpoint)
		if err != nil {
			d.errs = append(d.errs, fmt.Errorf("%s: checkpoint.type: %q (the default): %v; add a checkpoint section", src, DefaultCheckpoint, err))
		} else {
			setDefaults(cfg)
			c.Checkpoint = CheckpointSection{Type: DefaultCheckpoint, Config: cfg}
		}
	}
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	c.Source.SetDefaults()
	// "" means "the default" for these, as the example file shows.
	c.Lease.SetDefaults()
	c.Log.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, d.locate(err)
	}
	return c, nil
}

// Bounds of the search for a syntax error's line: a config is a few
// kilobytes, and past these the line yaml.v3 gives is kept.
const (
	maxSyntaxScanBytes = 1 << 20
	maxSyntaxScanLines = 2000
)

// yamlErrLine is the position yaml.v3 writes into a syntax error.
var yamlErrLine = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// syntaxError reports a YAML syntax error on the line that holds it.
// yaml.v3 gives the line where the enclosing construct starts (a list, a
// quoted text), and counts it from 0 for parser errors, so its "line 3"
// may mean a problem on line 6. The problem is on the last line of the
// shortest part of the file, from that line on, that yaml.v3 refuses with
// the same words.
func syntaxError(src string, data []byte, err error) error {
	problem, from := strings.TrimPrefix(err.Error(), "yaml: "), 1
	if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
		problem = m[2]
		from, _ = strconv.Atoi(m[1])
	}
	line, ok := problemLine(data, max(from, 1), problem)
	if !ok {
		return fmt.Errorf("%s: YAML syntax error: %s", src, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	return fmt.Errorf("%s:%d: YAML syntax error: %s", src, line, problem)
}

// problemLine finds the first line n >= from such that lines 1..n fail to
// parse with problem.
func problemLine(data []byte, from int, problem string) (int, bool) {
	if len(data) > maxSyntaxScanBytes {
		return 0, false
	}
	end, line := 0, 0
	next := func() {
		if i := bytes.IndexByte(data[end:], '\n'); i >= 0 {
			end += i + 1
		} else {
			end = len(data)
		}
		line++
	}
	for line < from-1 && end < len(data) {
		next()
	}
	for range maxSyntaxScanLines {
		if end == len(data) {
			break
		}
		next()
		var n yaml.Node
		err := yaml.NewDecoder(bytes.NewReader(data[:end])).Decode(&n)
		if err == nil {
			continue
		}
		got := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlErrLine.FindStringSubmatch(err.Error()); m != nil {
			got = m[2]
		}
		if got == problem {
			return line, true
		}
	}
	return 0, false
}

// decoder walks the YAML node tree into Go values by reflection. yaml.v3's
// own strict mode (KnownFields) does not reach sections decoded through
// Node.Decode, and its errors name neither the field path nor, for
// secrets, keep the value out; walking the tree ourselves does all three.
type decoder struct {
	src      string
	lookup   func(string) (string, bool)
	errs     []error
	lines    map[string]int      // field path -> line, to locate validation errors
	active   map[*yaml.Node]bool // aliases being walked, to refuse cycles
	steps    int                 // nodes visited, bounded by maxSteps
	deferred []func()            // org sink sections, which need the top-level sink
	sink     struct {
		node *yaml.Node
		ok   bool
	}
}

var (
	durationType   = reflect.TypeFor[time.Duration]()
	timeType       = reflect.TypeFor[time.Time]()
	secretType     = reflect.TypeFor[secret.Secret]()
	sinkType       = reflect.TypeFor[SinkSection]()
	checkpointType = reflect.TypeFor[CheckpointSection]()
	unmarshalerT   = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalT = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fail records `src:line: path: [value: ]why`.
func (d *decoder) fail(n *yaml.Node, path, value, why string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: %s: ", d.src, n.Line, path)
	if value != "" {
		b.WriteString(value)
		b.WriteString(": ")
	}
	b.WriteString(why)
	d.errs = append(d.errs, errors.New(b.String()))
}

// locate prefixes each validation error with the file and, when the field
// was written in the file, its line.
func (d *decoder) locate(err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		if e == nil {
			continue
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			out = append(out, d.locate(errors.Join(j.Unwrap()...)))
			continue
		}
		path, _, _ := strings.Cut(e.Error(), ": ")
		if line, ok := d.lineOf(path); ok {
			out = append(out, fmt.Errorf("%s:%d: %w", d.src, line, e))
		} else {
			out = append(out, fmt.Errorf("%s: %w", d.src, e))
		}
	}
	return errors.Join(out...)
}

// lineOf finds the line of path or, for a key the file left out (a
// missing token), of the nearest enclosing entry.
func (d *decoder) lineOf(path string) (int, bool) {
	for path != "" {
		if line, ok := d.lines[path]; ok {
			return line, true
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0, false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "an alias"
}

// show renders a rejected value for a message, shortened.
func show(s string) string {
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return strconv.Quote(s)
}

// value decodes n into v, which is addressable.
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) {
	d.steps++
	if d.steps > maxSteps {
		if d.steps == maxSteps+1 {
			d.fail(n, path, "", fmt.Sprintf("more than %d YAML nodes (aliases nested too deep?)", maxSteps))
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if d.active[n] || n.Alias == nil {
			d.fail(n, path, "*"+n.Value, "alias refers to itself")
			return
		}
		d.active[n] = true
		defer delete(d.active, n)
		d.value(path, n.Alias, v)
		return
	}
	if _, ok := d.lines[path]; !ok && path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	t := v.Type()
	switch t {
	case durationType:
		s, ok := d.scalar(path, n, false)
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.fail(n, path, show(s), "not a duration (Go syntax such as 30s, 5m, 1h30m)")
			return
		}
		v.SetInt(int64(dur))
		return
	case timeType:
		s, ok := d.scalar(path, n, false)
		if !ok {
			return
		}
		tm, err := parseTime(s)
		if err != nil {
			d.fail(n, path, show(s), "not a time (RFC3339 such as 2026-06-01T00:00:00Z, or a date such as 2026-06-01)")
			return
		}
		v.Set(reflect.ValueOf(tm))
		return
	case sinkType:
		sec := v.Addr().Interface().(*SinkSection)
		if path == "sink" {
			d.sink.node = d.deref(n)
			nerr := len(d.errs)
			sec.Type, sec.Config = d.sinkSection(path, n)
			d.sink.ok = len(d.errs) == nerr && sec.Config != nil
			return
		}
		// Org sections may inherit from the top-level one, which may come
		// later in the file.
		d.deferred = append(d.deferred, func() { d.orgSink(path, n, sec) })
		return
	case checkpointType:
		sec := v.Addr().Interface().(*CheckpointSection)
		var cfg any
		sec.Type, cfg = d.section(path, n, "checkpoint", DefaultCheckpoint, newCheckpoint)
		sec.Config, _ = cfg.(checkpoint.Config)
		return
	}
	if t.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(t.Elem()))
		}
		d.value(path, n, v.Elem())
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerT) {
		c, ok := d.expandTree(path, n)
		if !ok {
			return
		}
		if err := c.Decode(v.Addr().Interface()); err != nil {
			d.fail(n, path, "", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshalT) {
		s, ok := d.scalar(path, n, t == secretType)
		if !ok {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			if t == secretType {
				d.fail(n, path, "", "invalid value")
			} else {
				d.fail(n, path, show(s), err.Error())
			}
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.mapping(path, n, v, "")
	case reflect.Slice:
		d.slice(path, n, v)
	case reflect.Map:
		d.dict(path, n, v)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.fail(n, path, "", "cannot decode into "+t.String())
			return
		}
		c, ok := d.expandTree(path, n)
		if !ok {
			return
		}
		if err := c.Decode(v.Addr().Interface()); err != nil {
			d.fail(n, path, "", strings.TrimPrefix(err.Error(), "yaml: "))
		}
	default:
		d.leaf(path, n, v)
	}
}

func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// scalar returns n's text with ${VAR} expanded. For a secret field an
// error never quotes the text, only variable names.
func (d *decoder) scalar(path string, n *yaml.Node, isSecret bool) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, "", "must be a single value, not "+kindName(n))
		return "", false
	}
	s, err := expand(n.Value, d.lookup)
	if err != nil {
		var unset *UnsetVarError
		if isSecret && !errors.As(err, &unset) {
			err = errors.New("invalid ${...} expression (write $$ for a literal $)")
		}
		d.fail(n, path, "", err.Error())
		return "", false
	}
	return s, true
}

func (d *decoder) leaf(path string, n *yaml.Node, v reflect.Value) {
	s, ok := d.scalar(path, n, false)
	if !ok {
		return
	}
	t := v.Type()
	switch t.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.fail(n, path, show(s), "must be true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			i, err = strconv.ParseInt(s, 0, t.Bits())
		}
		if err != nil {
			d.fail(n, path, show(s), fmt.Sprintf("must be a whole number (%d bits)", t.Bits()))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(s, 10, t.Bits())
		if err != nil {
			u, err = strconv.ParseUint(s, 0, t.Bits())
		}
		if err != nil {
			d.fail(n, path, show(s), fmt.Sprintf("must be a whole number from 0 (%d bits)", t.Bits()))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, show(s), "must be a finite number")
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, "", "cannot decode into "+t.String())
	}
}

type pair struct{ key, val *yaml.Node }

// pairs lists a mapping's entries with YAML merge keys (<<: *base) laid
// under the explicit ones; earlier merges win over later ones.
func (d *decoder) pairs(path string, n *yaml.Node) []pair {
	var out, merged []pair
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		out = append(out, pair{k, v})
	}
	if len(merges) == 0 {
		return out
	}
	have := map[string]bool{}
	for _, p := range out {
		have[p.key.Value] = true
	}
	var add func(m *yaml.Node)
	add = func(m *yaml.Node) {
		d.steps++
		if d.steps > maxSteps {
			return
		}
		if m.Kind == yaml.AliasNode {
			if d.active[m] || m.Alias == nil {
				d.fail(m, path, "*"+m.Value, "merge refers to itself")
				return
			}
			d.active[m] = true
			defer delete(d.active, m)
			add(m.Alias)
			return
		}
		switch m.Kind {
		case yaml.MappingNode:
			for _, p := range d.pairs(path, m) {
				if !have[p.key.Value] {
					have[p.key.Value] = true
					merged = append(merged, p)
				}
			}
		case yaml.SequenceNode:
			for _, e := range m.Content {
				add(e)
			}
		default:
			d.fail(m, path, "<<", "a merge takes a mapping or a list of mappings")
		}
	}
	for _, m := range merges {
		add(m)
	}
	return append(out, merged...)
}

// mapping decodes a mapping into the struct v; unknown and repeated keys
// are errors. skip names a key handled by the caller.
func (d *decoder) mapping(path string, n *yaml.Node, v reflect.Value, skip string) {
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "", "must be a mapping (key: value), not "+kindName(n))
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]int{}
	for _, p := range d.pairs(path, n) {
		if p.key.Kind != yaml.ScalarNode {
			d.fail(p.key, path, "", "keys must be plain names, not "+kindName(p.key))
			continue
		}
		key := p.key.Value
		if key == skip && skip != "" {
			continue
		}
		fp := join(path, key)
		if line, dup := seen[key]; dup {
			d.fail(p.key, fp, "", fmt.Sprintf("key repeated (first at line %d)", line))
			continue
		}
		seen[key] = p.key.Line
		idx, ok := fields[key]
		if !ok && path == "" && strings.HasPrefix(key, "x-") {
			continue // top-level x- keys hold YAML anchors, as in Compose files
		}
		if !ok {
			d.fail(p.key, fp, "", "unknown key (valid here: "+knownKeys(fields, skip)+")")
			continue
		}
		d.value(fp, p.val, v.FieldByIndex(idx))
	}
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

// fieldsOf maps YAML keys to field indexes the way yaml.v3 does: the yaml
// tag's name, else the lowercased field name; ",inline" structs flattened.
func fieldsOf(t reflect.Type) map[string][]int {
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
			for k, idx := range fieldsOf(f.Type) {
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

func (d *decoder) slice(path string, n *yaml.Node, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, "", "must be a list, not "+kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		d.value(fmt.Sprintf("%s[%d]", path, i), e, s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) dict(path string, n *yaml.Node, v reflect.Value) {
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, "", "cannot decode into "+t.String())
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "", "must be a mapping (key: value), not "+kindName(n))
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	seen := map[string]int{}
	for _, p := range d.pairs(path, n) {
		if p.key.Kind != yaml.ScalarNode {
			d.fail(p.key, path, "", "keys must be plain names, not "+kindName(p.key))
			continue
		}
		key := p.key.Value
		fp := join(path, key)
		if line, dup := seen[key]; dup {
			d.fail(p.key, fp, "", fmt.Sprintf("key repeated (first at line %d)", line))
			continue
		}
		seen[key] = p.key.Line
		e := reflect.New(t.Elem()).Elem()
		d.value(fp, p.val, e)
		v.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), e)
	}
}

// expandTree copies n with ${VAR} expanded in every scalar, for values
// that decode themselves (yaml.Unmarshaler, interface{}). A plain scalar
// that changed loses its tag so that it resolves again (a number stays a
// number).
func (d *decoder) expandTree(path string, n *yaml.Node) (*yaml.Node, bool) {
	ok := true
	var walk func(n *yaml.Node, depth int) *yaml.Node
	walk = func(n *yaml.Node, depth int) *yaml.Node {
		d.steps++
		if depth > 100 || d.steps > maxSteps {
			if ok {
				d.fail(n, path, "", "nested too deep")
			}
			ok = false
			return n
		}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			return walk(n.Alias, depth+1)
		}
		c := *n
		if n.Kind == yaml.ScalarNode {
			s, err := expand(n.Value, d.lookup)
			if err != nil {
				d.fail(n, path, "", err.Error())
				ok = false
				return n
			}
			if s != n.Value {
				c.Value = s
				if n.Style == 0 {
					c.Tag = ""
				}
			}
			return &c
		}
		c.Content = make([]*yaml.Node, len(n.Content))
		for i, e := range n.Content {
			c.Content[i] = walk(e, depth+1)
		}
		return &c
	}
	c := walk(n, 0)
	return c, ok
}

func newSink(name string) (any, error)       { return sinks.New(name) }
func newCheckpoint(name string) (any, error) { return checkpoint.New(name) }

func types(kind string) string {
	var t []string
	if kind == "sink" {
		t = sinks.Types()
	} else {
		t = checkpoint.Types()
	}
	if len(t) == 0 {
		return "none registered"
	}
	return strings.Join(t, ", ")
}

// section decodes a registry-chosen section: its `type` key, or def when
// it has none (def "" makes the key required), picks the concrete config,
// into which the other keys decode strictly.
func (d *decoder) section(path string, n *yaml.Node, kind, def string, newCfg func(string) (any, error)) (string, any) {
	n = d.deref(n)
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "", "must be a mapping with a type key, not "+kindName(n))
		return "", nil
	}
	var typNode *yaml.Node
	for _, p := range d.pairs(path, n) {
		if p.key.Kind == yaml.ScalarNode && p.key.Value == "type" {
			typNode = p.val
			break
		}
	}
	typ := def
	switch {
	case typNode != nil:
		d.lines[path+".type"] = typNode.Line
		s, ok := d.scalar(path+".type", d.deref(typNode), false)
		if !ok {
			return "", nil
		}
		typ = s
	case def == "":
		d.fail(n, path+".type", "missing", "required: one of "+types(kind))
		return "", nil
	default:
		typNode = n // a section without type: is the default type's
	}
	cfg, err := newCfg(typ)
	if err != nil {
		d.fail(typNode, path+".type", show(typ), "unknown "+kind+" type (registered: "+types(kind)+")")
		return typ, nil
	}
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		d.fail(typNode, path+".type", show(typ), fmt.Sprintf("registered config %T is not a pointer to a struct", cfg))
		return typ, nil
	}
	d.mapping(path, n, rv.Elem(), "type")
	setDefaults(cfg)
	return typ, cfg
}

func setDefaults(cfg any) {
	if df, ok := cfg.(sinks.Defaulter); ok {
		df.SetDefaults()
	}
}

// orgSink decodes an org's sink section. Without a type key its keys are
// laid over the top-level section; with one it stands alone.
func (d *decoder) orgSink(path string, n *yaml.Node, dst *SinkSection) {
	n = d.deref(n)
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, "", "must be a mapping, not "+kindName(n))
		return
	}
	own := map[string]bool{}
	for _, p := range d.pairs(path, n) {
		own[p.key.Value] = true
	}
	if d.sink.node != nil && !own["type"] {
		if !d.sink.ok {
			return // the top-level section's errors are already reported
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
		for _, p := range d.pairs("sink", d.sink.node) {
			if !own[p.key.Value] {
				m.Content = append(m.Content, p.key, p.val)
			}
		}
		for _, p := range d.pairs(path, n) {
			m.Content = append(m.Content, p.key, p.val)
		}
		n = m
	}
	dst.Type, dst.Config = d.sinkSection(path, n)
}

func (d *decoder) sinkSection(path string, n *yaml.Node) (string, sinks.Config) {
	typ, cfg := d.section(path, n, "sink", "", newSink)
	c, _ := cfg.(sinks.Config)
	return typ, c
}

// parseTime accepts RFC3339 (any offset, converted to UTC) or a date,
// which means midnight UTC.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, err
	}
	return t, nil
}
