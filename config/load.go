package config

import (
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/internal/yamlstrict"
	"github.com/vaultsink/vaultsink/sinks"
)

// maxFileSize bounds what Load reads; a config is a few kilobytes.
const maxFileSize = 8 << 20

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
	root, err := yamlstrict.Document(src, data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, fmt.Errorf("%s: empty config", src)
	}
	l := &loader{d: yamlstrict.NewDecoder(src, lookup)}
	l.d.Special = l.special
	l.d.ExtensionPrefix = "x-" // top-level x- keys hold YAML anchors, as in Compose files
	c := &Config{}
	c.SetDefaults()
	l.d.Decode(root, c)
	for _, f := range l.deferred {
		f()
	}
	if c.Checkpoint.Type == "" { // no section, or an empty one
		cfg, err := checkpoint.New(DefaultCheckpoint)
		if err != nil {
			l.d.Fail(nil, "checkpoint.type", fmt.Sprintf("%q (the default)", DefaultCheckpoint), err.Error()+"; add a checkpoint section")
		} else {
			setDefaults(cfg)
			c.Checkpoint = CheckpointSection{Type: DefaultCheckpoint, Config: cfg}
		}
	}
	if err := l.d.Err(); err != nil {
		return nil, err
	}
	c.Source.SetDefaults()
	// "" means "the default" for these, as the example file shows.
	c.Lease.SetDefaults()
	c.Log.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, l.d.Locate(err)
	}
	return c, nil
}

// loader is what vaultsink's config adds to the strict YAML walker: the
// sections whose type: key picks a registered config, secrets, times.
type loader struct {
	d        *yamlstrict.Decoder
	deferred []func() // org sink sections, which need the top-level sink
	sink     struct {
		node *yaml.Node
		ok   bool
	}
}

var (
	timeType       = reflect.TypeFor[time.Time]()
	secretType     = reflect.TypeFor[secret.Secret]()
	sinkType       = reflect.TypeFor[SinkSection]()
	checkpointType = reflect.TypeFor[CheckpointSection]()
)

// special decodes the types the walker does not know.
func (l *loader) special(path string, n *yaml.Node, v reflect.Value) bool {
	d := l.d
	switch v.Type() {
	case timeType:
		s, ok := d.Scalar(path, n, false)
		if !ok {
			return true
		}
		tm, err := parseTime(s)
		if err != nil {
			d.Fail(n, path, yamlstrict.Quote(s), "not a time (RFC3339 such as 2026-06-01T00:00:00Z, or a date such as 2026-06-01)")
			return true
		}
		v.Set(reflect.ValueOf(tm))
	case secretType:
		// The text never appears in a message, not even a bad ${...}.
		s, ok := d.Scalar(path, n, true)
		if !ok {
			return true
		}
		if err := v.Addr().Interface().(*secret.Secret).UnmarshalText([]byte(s)); err != nil {
			d.Fail(n, path, "", "invalid value")
		}
	case sinkType:
		sec := v.Addr().Interface().(*SinkSection)
		if path == "sink" {
			l.sink.node = yamlstrict.Deref(n)
			nerr := d.Failures()
			sec.Type, sec.Config = l.sinkSection(path, n)
			l.sink.ok = d.Failures() == nerr && sec.Config != nil
			return true
		}
		// Org sections may inherit from the top-level one, which may come
		// later in the file.
		l.deferred = append(l.deferred, func() { l.orgSink(path, n, sec) })
	case checkpointType:
		sec := v.Addr().Interface().(*CheckpointSection)
		var cfg any
		sec.Type, cfg = l.section(path, n, "checkpoint", DefaultCheckpoint, newCheckpoint)
		sec.Config, _ = cfg.(checkpoint.Config)
	default:
		return false
	}
	return true
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
func (l *loader) section(path string, n *yaml.Node, kind, def string, newCfg func(string) (any, error)) (string, any) {
	n = yamlstrict.Deref(n)
	if n.Kind != yaml.MappingNode {
		l.d.Fail(n, path, "", "must be a mapping with a type key, not "+yamlstrict.KindName(n))
		return "", nil
	}
	var typNode *yaml.Node
	for _, p := range l.d.Pairs(path, n) {
		if p.Key.Kind == yaml.ScalarNode && p.Key.Value == "type" {
			typNode = p.Val
			break
		}
	}
	typ := def
	switch {
	case typNode != nil:
		l.d.SetLine(path+".type", typNode.Line)
		s, ok := l.d.Scalar(path+".type", yamlstrict.Deref(typNode), false)
		if !ok {
			return "", nil
		}
		typ = s
	case def == "":
		l.d.Fail(n, path+".type", "missing", "required: one of "+types(kind))
		return "", nil
	default:
		typNode = n // a section without type: is the default type's
	}
	cfg, err := newCfg(typ)
	if err != nil {
		l.d.Fail(typNode, path+".type", yamlstrict.Quote(typ), "unknown "+kind+" type (registered: "+types(kind)+")")
		return typ, nil
	}
	rv := reflect.ValueOf(cfg)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		l.d.Fail(typNode, path+".type", yamlstrict.Quote(typ), fmt.Sprintf("registered config %T is not a pointer to a struct", cfg))
		return typ, nil
	}
	l.d.Struct(path, n, rv.Elem(), "type")
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
func (l *loader) orgSink(path string, n *yaml.Node, dst *SinkSection) {
	n = yamlstrict.Deref(n)
	if n.Kind != yaml.MappingNode {
		l.d.Fail(n, path, "", "must be a mapping, not "+yamlstrict.KindName(n))
		return
	}
	own := map[string]bool{}
	for _, p := range l.d.Pairs(path, n) {
		own[p.Key.Value] = true
	}
	if l.sink.node != nil && !own["type"] {
		if !l.sink.ok {
			return // the top-level section's errors are already reported
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
		for _, p := range l.d.Pairs("sink", l.sink.node) {
			if !own[p.Key.Value] {
				m.Content = append(m.Content, p.Key, p.Val)
			}
		}
		for _, p := range l.d.Pairs(path, n) {
			m.Content = append(m.Content, p.Key, p.Val)
		}
		n = m
	}
	dst.Type, dst.Config = l.sinkSection(path, n)
}

func (l *loader) sinkSection(path string, n *yaml.Node) (string, sinks.Config) {
	typ, cfg := l.section(path, n, "sink", "", newSink)
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
