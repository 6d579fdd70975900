package yamlstrict

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Document parses data (named src in messages) as exactly one YAML
// document and returns its root node, or nil when the document is empty
// (nothing, only comments, or a null). A syntax error is reported as
// `src:line: YAML syntax error: problem`, on the line that holds it.
func Document(src string, data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(src, data, err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document (remove the --- separator)", src)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil, nil
	}
	return root, nil
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
