package yamlstrict

import (
	"fmt"
	"strings"
)

// unsetVarError reports a ${VAR} whose variable is not set and has no
// ${VAR:-default}.
type unsetVarError struct{ Name string }

func (e *unsetVarError) Error() string {
	return fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to allow that)", e.Name, e.Name)
}

// expand replaces ${VAR} and ${VAR:-default} with the variable's value and
// $$ with a single $. Any other $ is kept, so a token or password that
// happens to contain one survives. Like the shell, :- also applies when the
// variable is set but empty. Error messages name variables, never the text
// around them, because s may be a secret.
func expand(s string, lookup func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '{':
		default:
			b.WriteByte(c)
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ (write $$ for a literal $)")
		}
		expr := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !ValidVarName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${...} (letters, digits and _, not starting with a digit)", name)
		}
		v, ok := lookup(name)
		switch {
		case hasDef && v == "":
			v = def
		case !ok:
			return "", &unsetVarError{Name: name}
		}
		b.WriteString(v)
		i += 2 + end
	}
	return b.String(), nil
}

// ValidVarName reports whether s can name a variable in ${...}: letters,
// digits and _, not starting with a digit.
func ValidVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
