// Package yamlstrict decodes a YAML document into Go values strictly and
// reports every problem at once, each as `src:line: field.path: value: why`.
//
// It walks yaml.v3's node tree by reflection rather than using yaml.v3's
// own strict mode (KnownFields), which does not reach values decoded
// through Node.Decode and whose errors name neither the field path nor
// keep a sensitive value out. The walker:
//   - refuses unknown keys, listing the ones valid there, and repeated keys;
//   - expands ${VAR}, ${VAR:-default} and $$ inside scalar values, after
//     parsing, so a variable's value is only ever text;
//   - keeps a value the file leaves empty (null), so defaults set before
//     decoding survive;
//   - follows aliases and merge keys (<<), refusing cycles and bounding the
//     nodes visited;
//   - remembers each field path's line, so that errors found later (by
//     validation) can be located with Locate.
//
// Types the walker does not know are handed to a Special hook first.
package yamlstrict

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxSteps bounds the nodes visited, so that aliases cannot expand a small
// file into an enormous walk (the "billion laughs").
const maxSteps = 1 << 20

// A Decoder walks node trees into Go values and collects the problems.
// It is not safe for concurrent use.
type Decoder struct {
	// Special, when set, is offered every non-null value before the
	// walker's own handling, pointers included (it then sees the pointer
	// and, once allocated, what it points to). It returns true when it took
	// the value: it decoded it into v, which is addressable, or reported
	// why not with Fail.
	Special func(path string, n *yaml.Node, v reflect.Value) bool
	// ExtensionPrefix, when set, makes the walker skip the top-level keys
	// that start with it: they hold YAML anchors for use elsewhere, as the
	// x- keys of Compose files do.
	ExtensionPrefix string

	src    string
	lookup func(string) (string, bool)
	errs   []error
	lines  map[string]int      // field path -> line, to locate later errors
	active map[*yaml.Node]bool // aliases being walked, to refuse cycles
	steps  int                 // nodes visited, bounded by maxSteps
}

// NewDecoder returns a Decoder whose messages name src (usually the file
// name) and that expands ${VAR} with lookup (nil means os.LookupEnv).
func NewDecoder(src string, lookup func(string) (string, bool)) *Decoder {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	return &Decoder{src: src, lookup: lookup, lines: map[string]int{}, active: map[*yaml.Node]bool{}}
}

// Decode decodes the tree at n into the value v points to. Problems are
// collected, not returned: see Err.
func (d *Decoder) Decode(n *yaml.Node, v any) {
	d.value("", n, reflect.ValueOf(v).Elem())
}

// Err returns every problem reported so far, joined with errors.Join, in
// the order found; nil if none.
func (d *Decoder) Err() error { return errors.Join(d.errs...) }

// Failures returns how many problems were reported so far.
func (d *Decoder) Failures() int { return len(d.errs) }

// Fail records the problem `src:line: path: [value: ]why`, at n's line;
// without n (nil), `src: path: [value: ]why`. A value quoted in it should
// go through Quote.
func (d *Decoder) Fail(n *yaml.Node, path, value, why string) {
	var b strings.Builder
	if n != nil {
		fmt.Fprintf(&b, "%s:%d: %s: ", d.src, n.Line, path)
	} else {
		fmt.Fprintf(&b, "%s: %s: ", d.src, path)
	}
	if value != "" {
		b.WriteString(value)
		b.WriteString(": ")
	}
	b.WriteString(why)
	d.errs = append(d.errs, errors.New(b.String()))
}

// SetLine records that path was written on line, for Locate.
func (d *Decoder) SetLine(path string, line int) { d.lines[path] = line }

// Locate prefixes each error in err (a single one or a tree of
// errors.Join) with the source name and, when the field path the error
// starts with (`path: ...`) was written in the file, its line; for a key
// the file left out, the line of the nearest enclosing entry.
func (d *Decoder) Locate(err error) error {
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
			out = append(out, d.Locate(errors.Join(j.Unwrap()...)))
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
func (d *Decoder) lineOf(path string) (int, bool) {
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

var (
	durationType   = reflect.TypeFor[time.Duration]()
	unmarshalerT   = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalT = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// KindName names n's kind for a message: "a mapping", "a list", "a single
// value" or "an alias".
func KindName(n *yaml.Node) string {
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

// Quote renders a rejected value for a message, shortened.
func Quote(s string) string {
	if len(s) > 64 {
		s = s[:61] + "..."
	}
	return strconv.Quote(s)
}

// value decodes n into v, which is addressable.
func (d *Decoder) value(path string, n *yaml.Node, v reflect.Value) {
	d.steps++
	if d.steps > maxSteps {
		if d.steps == maxSteps+1 {
			d.Fail(n, path, "", fmt.Sprintf("more than %d YAML nodes (aliases nested too deep?)", maxSteps))
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		d.follow(path, n, "alias", func(a *yaml.Node) { d.value(path, a, v) })
		return
	}
	if _, ok := d.lines[path]; !ok && path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // an empty value keeps the default
	}
	if d.Special != nil && d.Special(path, n, v) {
		return
	}
	t := v.Type()
	if t == durationType {
		s, ok := d.Scalar(path, n, false)
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.Fail(n, path, Quote(s), "not a duration (Go syntax such as 30s, 5m, 1h30m)")
			return
		}
		v.SetInt(int64(dur))
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
		d.decodeSelf(path, n, v)
		return
	}
	if reflect.PointerTo(t).Implements(textUnmarshalT) {
		s, ok := d.Scalar(path, n, false)
		if !ok {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.Fail(n, path, Quote(s), err.Error())
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.Struct(path, n, v, "")
	case reflect.Slice:
		d.slice(path, n, v)
	case reflect.Map:
		d.dict(path, n, v)
	case reflect.Interface:
		if t.NumMethod() != 0 {
			d.Fail(n, path, "", "cannot decode into "+t.String())
			return
		}
		d.decodeSelf(path, n, v)
	default:
		d.leaf(path, n, v)
	}
}

// follow walks the node the alias n names, refusing one that names
// itself or a node around it; what names the construct in the message.
func (d *Decoder) follow(path string, n *yaml.Node, what string, walk func(*yaml.Node)) {
	if d.active[n] || n.Alias == nil {
		d.Fail(n, path, "*"+n.Value, what+" refers to itself")
		return
	}
	d.active[n] = true
	defer delete(d.active, n)
	walk(n.Alias)
}

// decodeSelf hands n, expanded, to yaml.v3 for a value that decodes
// itself (a yaml.Unmarshaler) or holds anything (interface{}).
func (d *Decoder) decodeSelf(path string, n *yaml.Node, v reflect.Value) {
	c, ok := d.expandTree(path, n)
	if !ok {
		return
	}
	if err := c.Decode(v.Addr().Interface()); err != nil {
		d.Fail(n, path, "", strings.TrimPrefix(err.Error(), "yaml: "))
	}
}

// Deref follows n's aliases to the node they name.
func Deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// Scalar returns n's text with ${VAR} expanded, or reports why it cannot
// (n is not a single value, an expansion failed). For a sensitive value
// (a secret) a message never quotes the text, only variable names.
func (d *Decoder) Scalar(path string, n *yaml.Node, sensitive bool) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.Fail(n, path, "", "must be a single value, not "+KindName(n))
		return "", false
	}
	s, err := expand(n.Value, d.lookup)
	if err != nil {
		var unset *unsetVarError
		if sensitive && !errors.As(err, &unset) {
			err = errors.New("invalid ${...} expression (write $$ for a literal $)")
		}
		d.Fail(n, path, "", err.Error())
		return "", false
	}
	return s, true
}

func (d *Decoder) leaf(path string, n *yaml.Node, v reflect.Value) {
	s, ok := d.Scalar(path, n, false)
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
			d.Fail(n, path, Quote(s), "must be true or false")
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(s, 10, t.Bits())
		if err != nil {
			i, err = strconv.ParseInt(s, 0, t.Bits())
		}
		if err != nil {
			d.Fail(n, path, Quote(s), fmt.Sprintf("must be a whole number (%d bits)", t.Bits()))
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(s, 10, t.Bits())
		if err != nil {
			u, err = strconv.ParseUint(s, 0, t.Bits())
		}
		if err != nil {
			d.Fail(n, path, Quote(s), fmt.Sprintf("must be a whole number from 0 (%d bits)", t.Bits()))
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, t.Bits())
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.Fail(n, path, Quote(s), "must be a finite number")
			return
		}
		v.SetFloat(f)
	default:
		d.Fail(n, path, "", "cannot decode into "+t.String())
	}
}

// expandTree copies n with ${VAR} expanded in every scalar, for values
// that decode themselves. A plain scalar that changed loses its tag so
// that it resolves again (a number stays a number).
func (d *Decoder) expandTree(path string, n *yaml.Node) (*yaml.Node, bool) {
	ok := true
	var walk func(n *yaml.Node, depth int) *yaml.Node
	walk = func(n *yaml.Node, depth int) *yaml.Node {
		d.steps++
		if depth > 100 || d.steps > maxSteps {
			if ok {
				d.Fail(n, path, "", "nested too deep")
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
				d.Fail(n, path, "", err.Error())
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
