package bqtest

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	bq "google.golang.org/api/bigquery/v2"
)

// queryError is a statement the stand-in refuses, reported like BigQuery's
// 400 with a reason (invalidQuery, notFound).
type queryError struct {
	reason string
	msg    string
}

func (e *queryError) Error() string { return e.reason + ": " + e.msg }

func invalidQuery(format string, args ...any) error {
	return &queryError{reason: "invalidQuery", msg: fmt.Sprintf(format, args...)}
}

// tableRef names a table the statement refers to.
type tableRef struct{ dataset, table string }

// translated is one GoogleSQL statement in DuckDB's dialect.
type translated struct {
	sql       string
	kind      string     // SELECT, MERGE, INSERT, UPDATE, DELETE, CREATE_TABLE, DROP_TABLE, ALTER_TABLE, BEGIN, COMMIT, ROLLBACK
	target    *tableRef  // table modified by DML or DDL
	tables    []tableRef // every qualified table named
	schemaDDL bool       // CREATE/ALTER/DROP: table metadata must be resynchronised
}

// translate rewrites a GoogleSQL script for DuckDB. Only dialect is changed:
// backtick identifiers, @parameters (inlined as typed literals), "strings",
// INSERT ROW, PARSE_JSON and BigQuery type names in DDL. Anything the
// tokenizer does not recognise is passed through, so DuckDB rejects what it
// cannot run; a few constructs DuckDB accepts but BigQuery does not are
// rejected here.
func translate(script, project string, params []*bq.QueryParameter) ([]translated, error) {
	toks, err := tokenize(script)
	if err != nil {
		return nil, err
	}
	pv := map[string]*bq.QueryParameter{}
	for _, p := range params {
		if p.Name == "" {
			return nil, invalidQuery("positional query parameters are not supported by the stand-in")
		}
		pv[strings.ToLower(p.Name)] = p
	}
	toks, err = rewriteParseJSON(toks)
	if err != nil {
		return nil, err
	}
	var out []translated
	var cur []token
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		st, err := translateStatement(cur, project, pv)
		if err != nil {
			return err
		}
		out = append(out, st)
		cur = nil
		return nil
	}
	for _, t := range toks {
		if t.kind == tokPunct && t.text == ";" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if t.kind == tokSpace && len(cur) == 0 {
			continue
		}
		cur = append(cur, t)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, invalidQuery("Syntax error: Unexpected end of script")
	}
	return out, nil
}

var bqTypes = map[string]string{
	"STRING": "VARCHAR", "INT64": "BIGINT", "INTEGER": "BIGINT", "FLOAT64": "DOUBLE", "FLOAT": "DOUBLE",
	"BOOL": "BOOLEAN", "BOOLEAN": "BOOLEAN", "BYTES": "BLOB", "TIMESTAMP": "TIMESTAMPTZ",
	"DATETIME": "TIMESTAMP", "DATE": "DATE", "TIME": "TIME", "NUMERIC": "DECIMAL(38,9)", "JSON": "JSON",
}

func translateStatement(toks []token, project string, params map[string]*bq.QueryParameter) (translated, error) {
	var st translated
	words := keywords(toks)
	if len(words) == 0 {
		return st, invalidQuery("Syntax error: empty statement")
	}
	switch words[0] {
	case "SELECT", "WITH", "(":
		st.kind = "SELECT"
	case "MERGE", "INSERT", "UPDATE", "DELETE", "COMMIT", "ROLLBACK":
		st.kind = words[0]
	case "BEGIN":
		st.kind = "BEGIN"
	case "CREATE", "DROP", "ALTER":
		if len(words) < 2 {
			return st, invalidQuery("Syntax error at %s", words[0])
		}
		st.kind = words[0] + "_TABLE"
		st.schemaDDL = true
	default:
		return st, invalidQuery("Syntax error: Unexpected keyword %s (not supported by the stand-in)", words[0])
	}
	var b strings.Builder
	expectTarget := st.kind != "SELECT" && st.kind != "BEGIN" && st.kind != "COMMIT" && st.kind != "ROLLBACK"
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.kind {
		case tokBacktick:
			// A domain-scoped project (example.com:p) holds dots itself.
			name := t.text
			var parts []string
			if rest, ok := strings.CutPrefix(name, project+"."); ok {
				parts = append([]string{project}, strings.Split(rest, ".")...)
			} else {
				parts = strings.Split(name, ".")
			}
			switch len(parts) {
			case 1:
				b.WriteString(quoteIdent(parts[0]))
				continue
			case 2:
				parts = []string{project, parts[0], parts[1]}
			case 3:
			default:
				return st, invalidQuery("Invalid table name: `%s`", t.text)
			}
			if parts[0] != project {
				return st, &queryError{reason: "notFound", msg: fmt.Sprintf("Not found: Project %s", parts[0])}
			}
			ref := tableRef{parts[1], parts[2]}
			st.tables = append(st.tables, ref)
			if expectTarget && st.target == nil {
				r := ref
				st.target = &r
			}
			b.WriteString(quoteIdent(ref.dataset) + "." + quoteIdent(ref.table))
		case tokParam:
			name := strings.ToLower(t.text)
			p, ok := params[name]
			if !ok {
				return st, invalidQuery("Query parameter '%s' not found", t.text)
			}
			lit, err := literal(p)
			if err != nil {
				return st, err
			}
			b.WriteString(lit)
		case tokDQString:
			// GoogleSQL "..." is a string literal; in DuckDB it would be an identifier.
			b.WriteString("'" + strings.ReplaceAll(t.text, "'", "''") + "'")
		case tokString:
			b.WriteString("'" + strings.ReplaceAll(t.text, "'", "''") + "'")
		case tokPunct:
			if t.text == "::" {
				return st, invalidQuery("Syntax error: Unexpected \"::\" (not GoogleSQL)")
			}
			b.WriteString(t.text)
		case tokWord:
			up := strings.ToUpper(t.text)
			next := nextWord(toks, i)
			switch {
			case up == "INSERT" && next == "ROW":
				b.WriteString("INSERT *")
				i = skipTo(toks, i, "ROW")
				continue
			case up == "INSERT" && next == "*":
				return st, invalidQuery("Syntax error: INSERT * is not GoogleSQL (use INSERT ROW)")
			case up == "MERGE" && next != "INTO":
				// INTO is optional in GoogleSQL, required by DuckDB.
				b.WriteString("MERGE INTO")
				continue
			case duckFuncs[up] != "" && next == "(":
				b.WriteString(duckFuncs[up])
				continue
			case up == "@@":
				return st, invalidQuery("system variables are not supported by the stand-in")
			case st.schemaDDL:
				if d, ok := bqTypes[up]; ok && prevIsTypePosition(toks, i) {
					b.WriteString(d)
					continue
				}
			}
			if st.target == nil && expectTarget && st.schemaDDL && !isKeyword(up) {
				// Unquoted dataset.table in DDL.
				if i+2 < len(toks) && toks[i+1].text == "." && toks[i+2].kind == tokWord {
					ref := tableRef{t.text, toks[i+2].text}
					st.target = &ref
					st.tables = append(st.tables, ref)
				}
			}
			b.WriteString(t.text)
		default:
			b.WriteString(t.text)
		}
	}
	if st.target == nil && expectTarget {
		// An unqualified target would resolve against the job's default
		// dataset, which the stand-in does not model: refuse rather than guess.
		return st, invalidQuery("Table name is missing a dataset (the stand-in needs `project.dataset.table` or `dataset.table`)")
	}
	st.sql = b.String()
	return st, nil
}

// duckFuncs are GoogleSQL functions DuckDB spells differently.
// ERROR and FORMAT become DuckDB's error and printf (same %s and %d);
// CURRENT_TIMESTAMP() becomes now().
var duckFuncs = map[string]string{"LOGICAL_OR": "bool_or", "LOGICAL_AND": "bool_and", "COUNTIF": "count_if",
	"ERROR": "error", "FORMAT": "printf", "CURRENT_TIMESTAMP": "now"}

var sqlKeywords = map[string]bool{"CREATE": true, "TABLE": true, "IF": true, "NOT": true, "EXISTS": true, "OR": true,
	"REPLACE": true, "DROP": true, "ALTER": true, "ADD": true, "COLUMN": true, "TEMP": true, "TEMPORARY": true}

func isKeyword(up string) bool { return sqlKeywords[up] }

// prevIsTypePosition reports whether the word at i follows a column name, the
// only place a type name may be rewritten (STRING may also be a column name).
func prevIsTypePosition(toks []token, i int) bool {
	for j := i - 1; j >= 0; j-- {
		switch toks[j].kind {
		case tokSpace:
			continue
		case tokWord, tokBacktick:
			return !isKeyword(strings.ToUpper(toks[j].text)) || strings.EqualFold(toks[j].text, "COLUMN")
		case tokPunct:
			return toks[j].text == "<"
		}
		return false
	}
	return false
}

func nextWord(toks []token, i int) string {
	for j := i + 1; j < len(toks); j++ {
		if toks[j].kind == tokSpace {
			continue
		}
		return strings.ToUpper(toks[j].text)
	}
	return ""
}

func skipTo(toks []token, i int, word string) int {
	for j := i + 1; j < len(toks); j++ {
		if strings.EqualFold(toks[j].text, word) {
			return j
		}
	}
	return i
}

func keywords(toks []token) []string {
	var w []string
	for _, t := range toks {
		if t.kind == tokWord || (t.kind == tokPunct && t.text == "(") {
			w = append(w, strings.ToUpper(t.text))
		}
	}
	return w
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// literal renders a scalar query parameter as a typed DuckDB literal.
func literal(p *bq.QueryParameter) (string, error) {
	if p.ParameterType == nil || p.ParameterValue == nil {
		return "", invalidQuery("Query parameter '%s' has no type or value", p.Name)
	}
	if p.ParameterType.ArrayType != nil || p.ParameterType.StructTypes != nil {
		return "", invalidQuery("Query parameter '%s': ARRAY and STRUCT parameters are not supported by the stand-in", p.Name)
	}
	v := p.ParameterValue.Value
	typ := p.ParameterType.Type
	if v == "" && typ != "STRING" && typ != "BYTES" {
		return "NULL", nil
	}
	switch typ {
	case "STRING":
		return "'" + strings.ReplaceAll(v, "'", "''") + "'", nil
	case "INT64", "INTEGER":
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return "", invalidQuery("Query parameter '%s': invalid INT64 value %q", p.Name, v)
		}
		return "CAST(" + v + " AS BIGINT)", nil
	case "FLOAT64", "FLOAT":
		if _, err := strconv.ParseFloat(v, 64); err != nil {
			return "", invalidQuery("Query parameter '%s': invalid FLOAT64 value %q", p.Name, v)
		}
		return "CAST(" + v + " AS DOUBLE)", nil
	case "BOOL", "BOOLEAN":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return "", invalidQuery("Query parameter '%s': invalid BOOL value %q", p.Name, v)
		}
		return strings.ToUpper(strconv.FormatBool(b)), nil
	case "TIMESTAMP":
		for _, f := range []string{"2006-01-02 15:04:05.999999-07:00", time.RFC3339Nano, "2006-01-02 15:04:05.999999Z07:00", "2006-01-02 15:04:05.999999"} {
			if ts, err := time.Parse(f, v); err == nil {
				return "TIMESTAMPTZ '" + ts.UTC().Format("2006-01-02 15:04:05.000000") + "+00'", nil
			}
		}
		return "", invalidQuery("Query parameter '%s': invalid TIMESTAMP value %q", p.Name, v)
	case "DATE":
		if _, err := time.Parse("2006-01-02", v); err != nil {
			return "", invalidQuery("Query parameter '%s': invalid DATE value %q", p.Name, v)
		}
		return "DATE '" + v + "'", nil
	}
	return "", invalidQuery("Query parameter '%s': type %s is not supported by the stand-in", p.Name, typ)
}

type tokKind int

const (
	tokWord tokKind = iota
	tokSpace
	tokString
	tokDQString
	tokBacktick
	tokParam
	tokPunct
	tokNumber
)

type token struct {
	kind tokKind
	text string
}

// tokenize splits GoogleSQL into the tokens translation cares about. Comments
// become spaces; string escapes are resolved.
func tokenize(s string) ([]token, error) {
	var out []token
	r := []rune(s)
	for i := 0; i < len(r); {
		c := r[i]
		switch {
		case unicode.IsSpace(c):
			j := i
			for j < len(r) && unicode.IsSpace(r[j]) {
				j++
			}
			out = append(out, token{tokSpace, " "})
			i = j
		case c == '-' && i+1 < len(r) && r[i+1] == '-', c == '#':
			for i < len(r) && r[i] != '\n' {
				i++
			}
			out = append(out, token{tokSpace, " "})
		case c == '/' && i+1 < len(r) && r[i+1] == '*':
			end := strings.Index(string(r[i+2:]), "*/")
			if end < 0 {
				return nil, invalidQuery("Syntax error: Unclosed comment")
			}
			i += 2 + len([]rune(string(r[i+2:])[:end])) + 2
			out = append(out, token{tokSpace, " "})
		case c == '\'' || c == '"':
			if i+2 < len(r) && r[i+1] == c && r[i+2] == c {
				return nil, invalidQuery("triple-quoted strings are not supported by the stand-in")
			}
			var sb strings.Builder
			j := i + 1
			closed := false
			for j < len(r) {
				if r[j] == '\\' && j+1 < len(r) {
					switch r[j+1] {
					case 'n':
						sb.WriteRune('\n')
					case 't':
						sb.WriteRune('\t')
					default:
						sb.WriteRune(r[j+1])
					}
					j += 2
					continue
				}
				if r[j] == c {
					closed = true
					j++
					break
				}
				sb.WriteRune(r[j])
				j++
			}
			if !closed {
				return nil, invalidQuery("Syntax error: Unclosed string literal")
			}
			k := tokString
			if c == '"' {
				k = tokDQString
			}
			out = append(out, token{k, sb.String()})
			i = j
		case c == '`':
			end := strings.IndexRune(string(r[i+1:]), '`')
			if end < 0 {
				return nil, invalidQuery("Syntax error: Unclosed identifier literal")
			}
			name := string(r[i+1:])[:end]
			i += 1 + len([]rune(name)) + 1
			// `a`.`b`.`c` joins into one path.
			for len(out) >= 2 && out[len(out)-1].kind == tokPunct && out[len(out)-1].text == "." && out[len(out)-2].kind == tokBacktick {
				name = out[len(out)-2].text + "." + name
				out = out[:len(out)-2]
			}
			out = append(out, token{tokBacktick, name})
		case c == '@':
			if i+1 < len(r) && r[i+1] == '@' {
				out = append(out, token{tokWord, "@@"})
				i += 2
				continue
			}
			j := i + 1
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_') {
				j++
			}
			if j == i+1 {
				return nil, invalidQuery("Syntax error: Unexpected \"@\"")
			}
			out = append(out, token{tokParam, string(r[i+1 : j])})
			i = j
		case c == '?':
			return nil, invalidQuery("positional query parameters are not supported by the stand-in")
		case unicode.IsLetter(c) || c == '_':
			j := i
			for j < len(r) && (unicode.IsLetter(r[j]) || unicode.IsDigit(r[j]) || r[j] == '_') {
				j++
			}
			out = append(out, token{tokWord, string(r[i:j])})
			i = j
		case unicode.IsDigit(c):
			j := i
			for j < len(r) && (unicode.IsDigit(r[j]) || r[j] == '.' || r[j] == 'e' || r[j] == 'E') {
				j++
			}
			out = append(out, token{tokNumber, string(r[i:j])})
			i = j
		case c == ':' && i+1 < len(r) && r[i+1] == ':':
			out = append(out, token{tokPunct, "::"})
			i += 2
		default:
			out = append(out, token{tokPunct, string(c)})
			i++
		}
	}
	return out, nil
}

// rewriteParseJSON turns [SAFE.]PARSE_JSON(x[, wide_number_mode => 'm'])
// into CAST(bq_parse_json(x, 'm', safe) AS JSON): the stand-in's own
// function, which applies BigQuery's JSON limits (see parseJSON).
func rewriteParseJSON(toks []token) ([]token, error) {
	var out []token
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		if t.kind != tokWord || !strings.EqualFold(t.text, "PARSE_JSON") || nextWord(toks, i) != "(" {
			out = append(out, t)
			continue
		}
		safe := false
		if n := len(out); n >= 2 && out[n-1].text == "." && out[n-2].kind == tokWord && strings.EqualFold(out[n-2].text, "SAFE") {
			out = out[:n-2]
			safe = true
		}
		open := i + 1
		for toks[open].text != "(" {
			open++
		}
		// The arguments, split at top-level commas.
		var args [][]token
		var cur []token
		depth, end := 0, -1
		for j := open + 1; j < len(toks) && end < 0; j++ {
			switch {
			case toks[j].kind == tokPunct && toks[j].text == "(":
				depth++
			case toks[j].kind == tokPunct && toks[j].text == ")":
				if depth == 0 {
					end = j
					continue
				}
				depth--
			case toks[j].kind == tokPunct && toks[j].text == "," && depth == 0:
				args = append(args, cur)
				cur = nil
				continue
			}
			cur = append(cur, toks[j])
		}
		if end < 0 {
			return nil, invalidQuery("Syntax error: unclosed PARSE_JSON(")
		}
		args = append(args, cur)
		mode := "exact"
		for _, a := range args[1:] {
			var words []token
			for _, x := range a {
				if x.kind != tokSpace {
					words = append(words, x)
				}
			}
			if len(words) == 4 && strings.EqualFold(words[0].text, "wide_number_mode") && words[1].text == "=" && words[2].text == ">" && words[3].kind == tokString {
				mode = strings.ToLower(words[3].text)
				continue
			}
			mode = "" // not BigQuery's: left to ZetaSQL to refuse
		}
		if mode == "" {
			out = append(out, t)
			continue
		}
		inner, err := rewriteParseJSON(args[0])
		if err != nil {
			return nil, err
		}
		out = append(out, token{tokWord, "CAST"}, token{tokPunct, "("}, token{tokWord, "bq_parse_json"}, token{tokPunct, "("})
		out = append(out, inner...)
		out = append(out, token{tokPunct, ","}, token{tokString, mode}, token{tokPunct, ","}, token{tokWord, strings.ToUpper(strconv.FormatBool(safe))},
			token{tokPunct, ")"}, token{tokSpace, " "}, token{tokWord, "AS"}, token{tokSpace, " "}, token{tokWord, "JSON"}, token{tokPunct, ")"})
		i = end
	}
	return out, nil
}
