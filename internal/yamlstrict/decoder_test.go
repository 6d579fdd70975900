package yamlstrict

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type inner struct {
	Name  string        `yaml:"name"`
	Count int           `yaml:"count"`
	Wait  time.Duration `yaml:"wait"`
	On    bool          `yaml:"on"`
}

type Common struct {
	Region string `yaml:"region"`
}

type doc struct {
	Title  string            `yaml:"title"`
	Inner  inner             `yaml:"inner"`
	List   []inner           `yaml:"list"`
	Labels map[string]string `yaml:"labels"`
	Ptr    *int              `yaml:"ptr"`
	Rate   float64           `yaml:"rate"`
	Size   uint8             `yaml:"size"`
	Any    any               `yaml:"any"`
	Common `yaml:",inline"`
	Hidden string `yaml:"-"`
	Tree   []node `yaml:"tree"`
}

type node struct {
	Tree []node `yaml:"tree"`
}

const docKeys = "any, inner, labels, list, ptr, rate, region, size, title, tree"

// decode walks text into v, a pointer, and returns the
// joined problems (nil if none).
func decode(t *testing.T, d *Decoder, text string, v any) error {
	t.Helper()
	root, err := Document("t.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	d.Decode(root, v)
	return d.Err()
}

func lookupIn(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func TestDecode(t *testing.T) {
	text := `
x-base: &base {name: from-base, count: 2}
title: ${TITLE}
inner:
  <<: *base
  count: 0x10
  wait: 1m30s
  on: yes
list:
  - *base
  - {<<: *base, name: own}
labels: {a: "1", b: "${EMPTY:-dflt}"}
ptr: ${SEVEN}
rate: 2.5
size: 255
any:
  n: ${SEVEN}
  s: "${SEVEN}"
  l: [a, ~]
region: eu
`
	d := NewDecoder("t.yaml", lookupIn(map[string]string{"TITLE": "a $ b", "SEVEN": "7", "EMPTY": ""}))
	d.ExtensionPrefix = "x-"
	got := doc{Title: "default", Inner: inner{Name: "kept"}}
	if err := decode(t, d, text, &got); err != nil {
		t.Fatal(err)
	}
	seven := 7
	want := doc{
		Title:  "a $ b",
		Inner:  inner{Name: "from-base", Count: 16, Wait: 90 * time.Second, On: true},
		List:   []inner{{Name: "from-base", Count: 2}, {Name: "own", Count: 2}},
		Labels: map[string]string{"a": "1", "b": "dflt"},
		Ptr:    &seven,
		Rate:   2.5,
		Size:   255,
		// An expanded plain scalar resolves again (a number); a quoted one stays text.
		Any:    map[string]any{"n": 7, "s": "7", "l": []any{"a", nil}},
		Common: Common{Region: "eu"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

// TestEmptyKeepsDefault: a key without a value leaves what was there.
func TestEmptyKeepsDefault(t *testing.T) {
	got := doc{Title: "default", Inner: inner{Count: 3}}
	if err := decode(t, NewDecoder("t.yaml", nil), "title:\ninner:\n  count: ~\n", &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "default" || got.Inner.Count != 3 {
		t.Fatalf("defaults lost: %+v", got)
	}
}

// TestEveryProblemAtOnce: each problem is reported, in file order, with
// its line, its field path and the rejected value; the walk goes on past
// each one.
func TestEveryProblemAtOnce(t *testing.T) {
	text := `title: [a]
inner:
  name: ok
  count: many
  colour: red
  wait: 5
  on: maybe
list:
  - name: a
  - nme: b
labels: {a: x, a: y}
rate: .nan
size: 256
ptr: ${UNSET}
ttle: x
x-anchor: 1
[k]: v
`
	want := []string{
		`t.yaml:1: title: must be a single value, not a list`,
		`t.yaml:4: inner.count: "many": must be a whole number (64 bits)`,
		`t.yaml:5: inner.colour: unknown key (valid here: count, name, on, wait)`,
		`t.yaml:6: inner.wait: "5": not a duration (Go syntax such as 30s, 5m, 1h30m)`,
		`t.yaml:7: inner.on: "maybe": must be true or false`,
		`t.yaml:10: list[1].nme: unknown key (valid here: count, name, on, wait)`,
		`t.yaml:11: labels.a: key repeated (first at line 11)`,
		`t.yaml:12: rate: ".nan": must be a finite number`,
		`t.yaml:13: size: "256": must be a whole number from 0 (8 bits)`,
		`t.yaml:14: ptr: environment variable UNSET is not set (write ${UNSET:-default} to allow that)`,
		`t.yaml:15: ttle: unknown key (valid here: ` + docKeys + `)`,
		`t.yaml:16: x-anchor: unknown key (valid here: ` + docKeys + `)`,
		`t.yaml:17: : keys must be plain names, not a list`,
	}
	d := NewDecoder("t.yaml", lookupIn(nil))
	var got doc
	err := decode(t, d, text, &got)
	if err == nil {
		t.Fatal("no error")
	}
	if g, w := err.Error(), strings.Join(want, "\n"); g != w {
		t.Fatalf("got:\n%s\nwant:\n%s", g, w)
	}
	if d.Failures() != len(want) {
		t.Errorf("Failures() = %d, want %d", d.Failures(), len(want))
	}
	// What was right is decoded all the same.
	if got.Inner.Name != "ok" || len(got.List) != 2 || got.List[0].Name != "a" {
		t.Errorf("good values lost: %+v", got)
	}
}

func TestAliases(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"alias cycle", "list: &l\n  - *l\n", "t.yaml:1: list[0]: must be a mapping (key: value), not a list"},
		{"merge of itself", "inner: &a {<<: *a}\n", "t.yaml:1: inner: *a: merge refers to itself"},
		{"alias inside itself", "tree: &k\n  - tree: *k\n", "t.yaml:2: tree[0].tree[0].tree: *k: alias refers to itself"},
		{"merge of a scalar", "inner: {<<: 1}\n", "t.yaml:1: inner: <<: a merge takes a mapping or a list of mappings"},
		{"merge of a list of scalars", "inner: {<<: [1]}\n", "t.yaml:1: inner: <<: a merge takes a mapping or a list of mappings"},
		{"merged unknown key", "x-b: &b {nme: a}\ninner: {<<: *b}\n", "t.yaml:1: inner.nme: unknown key (valid here: count, name, on, wait)"},
		{"extension prefix only at the top", "inner: {x-b: 1}\n", "t.yaml:1: inner.x-b: unknown key (valid here: count, name, on, wait)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := NewDecoder("t.yaml", lookupIn(nil))
			d.ExtensionPrefix = "x-"
			err := decode(t, d, tt.text, &doc{})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err = %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestAliasBomb: aliases that would expand a small file into a billion
// nodes are cut off, quickly.
func TestAliasBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 8; i++ {
		b.WriteString("x-" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("any: *a8\n")
	d := NewDecoder("t.yaml", lookupIn(nil))
	d.ExtensionPrefix = "x-"
	err := decode(t, d, b.String(), &doc{})
	if err == nil || err.Error() != "t.yaml:1: any: nested too deep" {
		t.Fatalf("err = %v", err)
	}
}

// A value from the environment is only ever a scalar: YAML inside it is text.
func TestExpansionCannotInjectStructure(t *testing.T) {
	d := NewDecoder("t.yaml", lookupIn(map[string]string{"V": "x\ninner: {count: 9}"}))
	var got doc
	if err := decode(t, d, "title: ${V}\nany: ${V}\n", &got); err != nil {
		t.Fatal(err)
	}
	if got.Title != "x\ninner: {count: 9}" || got.Any != "x\ninner: {count: 9}" || got.Inner.Count != 0 {
		t.Fatalf("got %+v", got)
	}
}

type stamp struct{ Unix int64 }

type hooked struct {
	At    stamp     `yaml:"at"`
	Maybe *stamp    `yaml:"maybe"`
	Key   string    `yaml:"key"`
	When  time.Time `yaml:"when"`
}

// TestSpecial: the hook is offered the types first, pointers included; a
// value it declines goes the walker's way.
func TestSpecial(t *testing.T) {
	d := NewDecoder("t.yaml", lookupIn(map[string]string{"K": "sekrit"}))
	var seen []string
	d.Special = func(path string, n *yaml.Node, v reflect.Value) bool {
		seen = append(seen, path+" "+v.Type().String())
		switch {
		case v.Type() == reflect.TypeFor[stamp]():
			s, ok := d.Scalar(path, n, false)
			if !ok {
				return true
			}
			tm, err := time.Parse(time.DateOnly, s)
			if err != nil {
				d.Fail(n, path, Quote(s), "not a date")
				return true
			}
			v.Set(reflect.ValueOf(stamp{tm.Unix()}))
			return true
		case path == "key":
			if s, ok := d.Scalar(path, n, true); ok {
				v.SetString(strings.ToUpper(s))
			}
			return true
		}
		return false
	}
	var got hooked
	err := decode(t, d, "at: 1970-01-02\nmaybe: 1970-01-03\nkey: ${K}\nwhen: 2026-06-01T00:00:00Z\n", &got)
	if err != nil {
		t.Fatal(err)
	}
	want := hooked{At: stamp{86400}, Maybe: &stamp{2 * 86400}, Key: "SEKRIT", When: time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	wantSeen := []string{" yamlstrict.hooked", "at yamlstrict.stamp", "maybe *yamlstrict.stamp", "maybe yamlstrict.stamp", "key string", "when time.Time"}
	if !reflect.DeepEqual(seen, wantSeen) {
		t.Errorf("hook saw %q, want %q", seen, wantSeen)
	}

	// Its problems are reported like the walker's; a sensitive value's
	// text stays out of them.
	d = NewDecoder("t.yaml", lookupIn(nil))
	d.Special = func(path string, n *yaml.Node, v reflect.Value) bool {
		if path == "key" {
			d.Scalar(path, n, true)
			return true
		}
		return false
	}
	err = decode(t, d, "at: {unix: 1}\nkey: sekrit${oops\n", &hooked{})
	want2 := "t.yaml:2: key: invalid ${...} expression (write $$ for a literal $)"
	if err == nil || err.Error() != want2 {
		t.Fatalf("err = %v, want %s", err, want2)
	}
}

// TestLocate: errors found after decoding are given the line of the field
// they name, or of the nearest entry around a field the file left out.
func TestLocate(t *testing.T) {
	d := NewDecoder("t.yaml", lookupIn(nil))
	if err := decode(t, d, "title: a\ninner:\n  name: n\nlist:\n  - name: a\n  - name: b\n", &doc{}); err != nil {
		t.Fatal(err)
	}
	err := d.Locate(errors.Join(
		errors.New(`inner.name: "n": too short`),
		errors.New(`inner.count: 0: required`),
		errors.Join(errors.New(`list[1].name: "b": taken`)),
		errors.New(`region: "": required`),
	))
	want := `t.yaml:3: inner.name: "n": too short
t.yaml:3: inner.count: 0: required
t.yaml:6: list[1].name: "b": taken
t.yaml: region: "": required`
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
	d.SetLine("region", 9)
	if got := d.Locate(errors.New(`region: "": required`)).Error(); got != `t.yaml:9: region: "": required` {
		t.Errorf("after SetLine: %s", got)
	}
	d.Fail(nil, "inner.name", Quote(strings.Repeat("n", 70)), "no line")
	if got, want := d.Err().Error(), `t.yaml: inner.name: "`+strings.Repeat("n", 61)+`...": no line`; got != want {
		t.Errorf("Fail without a node = %s, want %s", got, want)
	}
}

func TestFields(t *testing.T) {
	got := map[string]string{}
	for k, idx := range Fields(reflect.TypeFor[doc]()) {
		got[k] = reflect.TypeFor[doc]().FieldByIndex(idx).Name
	}
	want := map[string]string{"title": "Title", "inner": "Inner", "list": "List", "labels": "Labels", "ptr": "Ptr",
		"rate": "Rate", "size": "Size", "any": "Any", "region": "Region", "tree": "Tree"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
