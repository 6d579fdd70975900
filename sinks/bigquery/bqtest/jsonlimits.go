package bqtest

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// MaxJSONDepth is the nesting limit of BigQuery's JSON type.
const MaxJSONDepth = 500

// parseJSON is GoogleSQL's PARSE_JSON as BigQuery runs it: nesting deeper
// than MaxJSONDepth fails, a duplicate key keeps its first member, and a
// number is checked by wide_number_mode: "exact" (the default) fails on a
// number a DOUBLE cannot hold without loss, "round" rounds it, and both fail
// on a number out of a DOUBLE's range (1e400). The result is compact JSON.
func parseJSON(s, mode string) (string, error) {
	switch mode {
	case "", "exact", "round":
	default:
		return "", fmt.Errorf("PARSE_JSON: invalid wide_number_mode %q", mode)
	}
	p := &jsonParser{s: s, round: mode == "round"}
	var out strings.Builder
	p.space()
	if err := p.value(&out, 0); err != nil {
		return "", err
	}
	p.space()
	if p.i != len(p.s) {
		return "", p.errf("unexpected data after the JSON value")
	}
	return out.String(), nil
}

type jsonParser struct {
	s     string
	i     int
	round bool
}

func (p *jsonParser) errf(format string, args ...any) error {
	return fmt.Errorf("Invalid input to PARSE_JSON: "+format+" (at offset %d)", append(args, p.i)...)
}

func (p *jsonParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *jsonParser) value(out *strings.Builder, depth int) error {
	if p.i >= len(p.s) {
		return p.errf("unexpected end of input")
	}
	switch c := p.s[p.i]; {
	case c == '{' || c == '[':
		if depth+1 > MaxJSONDepth {
			return fmt.Errorf("Invalid input to PARSE_JSON: JSON nesting depth exceeds the maximum of %d", MaxJSONDepth)
		}
		if c == '[' {
			return p.array(out, depth+1)
		}
		return p.object(out, depth+1)
	case c == '"':
		raw, _, err := p.str()
		if err != nil {
			return err
		}
		out.WriteString(raw)
		return nil
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(out)
	}
	for _, lit := range []string{"true", "false", "null"} {
		if strings.HasPrefix(p.s[p.i:], lit) {
			p.i += len(lit)
			out.WriteString(lit)
			return nil
		}
	}
	return p.errf("unexpected character %q", p.s[p.i])
}

func (p *jsonParser) array(out *strings.Builder, depth int) error {
	p.i++ // [
	out.WriteByte('[')
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		out.WriteByte(']')
		return nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			out.WriteByte(',')
		}
		p.space()
		if err := p.value(out, depth); err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.s) {
			return p.errf("unterminated array")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			out.WriteByte(']')
			return nil
		default:
			return p.errf("expected , or ] in an array")
		}
	}
}

func (p *jsonParser) object(out *strings.Builder, depth int) error {
	p.i++ // {
	out.WriteByte('{')
	seen := map[string]bool{}
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		out.WriteByte('}')
		return nil
	}
	first := true
	for {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			return p.errf("expected a member name")
		}
		raw, key, err := p.str()
		if err != nil {
			return err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return p.errf("expected : after a member name")
		}
		p.i++
		p.space()
		var v strings.Builder
		if err := p.value(&v, depth); err != nil {
			return err
		}
		if !seen[key] { // a duplicate key keeps its first member
			seen[key] = true
			if !first {
				out.WriteByte(',')
			}
			first = false
			out.WriteString(raw)
			out.WriteByte(':')
			out.WriteString(v.String())
		}
		p.space()
		if p.i >= len(p.s) {
			return p.errf("unterminated object")
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			out.WriteByte('}')
			return nil
		default:
			return p.errf("expected , or } in an object")
		}
	}
}

// str reads a string: its raw text (quotes included) and its value.
func (p *jsonParser) str() (raw, val string, err error) {
	start := p.i
	p.i++
	simple := true
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			raw = p.s[start:p.i]
			if simple {
				return raw, raw[1 : len(raw)-1], nil
			}
			v, err := strconv.Unquote(strings.ReplaceAll(raw, `\/`, `/`))
			if err != nil {
				return "", "", p.errf("bad string escape")
			}
			return raw, v, nil
		case c == '\\':
			simple = false
			p.i += 2
		case c < 0x20:
			return "", "", p.errf("control character in a string")
		default:
			p.i++
		}
	}
	return "", "", p.errf("unterminated string")
}

func (p *jsonParser) number(out *strings.Builder) error {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	digits := func() int {
		n := 0
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	intStart := p.i
	if digits() == 0 || (p.s[intStart] == '0' && p.i-intStart > 1) {
		return p.errf("bad number")
	}
	integer := true
	if p.i < len(p.s) && p.s[p.i] == '.' {
		integer = false
		p.i++
		if digits() == 0 {
			return p.errf("bad number")
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		integer = false
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if digits() == 0 {
			return p.errf("bad number")
		}
	}
	text := p.s[start:p.i]
	if integer {
		if _, err := strconv.ParseInt(text, 10, 64); err == nil {
			out.WriteString(text)
			return nil
		}
		if _, err := strconv.ParseUint(text, 10, 64); err == nil {
			out.WriteString(text)
			return nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if math.IsInf(f, 0) {
		return fmt.Errorf("Invalid input to PARSE_JSON: number overflow: %.40s", text)
	}
	exact := err == nil
	if exact {
		a, _ := new(big.Rat).SetString(text)
		b, _ := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
		exact = a != nil && b != nil && a.Cmp(b) == 0
	}
	if !exact && !p.round {
		return fmt.Errorf("Invalid input to PARSE_JSON: the number %.40s cannot be stored without loss of precision (wide_number_mode => 'exact')", text)
	}
	if exact && !integer {
		out.WriteString(text)
		return nil
	}
	out.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
	return nil
}

// parseJSONFunc is bq_parse_json(text, mode, safe) in DuckDB: PARSE_JSON
// (safe false) or SAFE.PARSE_JSON (safe true, NULL instead of an error).
type parseJSONFunc struct{}

func (parseJSONFunc) Config() duckdb.ScalarFuncConfig {
	vc, _ := duckdb.NewTypeInfo(duckdb.TYPE_VARCHAR)
	bo, _ := duckdb.NewTypeInfo(duckdb.TYPE_BOOLEAN)
	return duckdb.ScalarFuncConfig{InputTypeInfos: []duckdb.TypeInfo{vc, vc, bo}, ResultTypeInfo: vc}
}

func (parseJSONFunc) Executor() duckdb.ScalarFuncExecutor {
	return duckdb.ScalarFuncExecutor{RowExecutor: func(v []driver.Value) (any, error) {
		s, _ := v[0].(string)
		mode, _ := v[1].(string)
		safe, _ := v[2].(bool)
		out, err := parseJSON(s, mode)
		if err != nil {
			if safe {
				return nil, nil
			}
			return nil, err
		}
		return out, nil
	}}
}

func registerFuncs(c *sql.Conn) error {
	if err := duckdb.RegisterScalarUDF(c, "bq_parse_json", parseJSONFunc{}); err != nil {
		return errors.Join(errors.New("register bq_parse_json"), err)
	}
	return nil
}
