package source

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf16"
	"unicode/utf8"
)

// The JSON scanner the decoder walks a page with: strings, numbers,
// literals and whole values skipped or copied without building a tree,
// with the flags (escapes, non-ASCII, bad UTF-8, whitespace) the decoder
// needs to transform a value only when it must.

// scan flags
const (
	flEsc      uint8 = 1 << iota // a string with a backslash escape
	flNonASCII                   // bytes >= 0x80 in a string
	flBadUTF8                    // invalid UTF-8 in a string
	flWS                         // whitespace between the tokens of a value
)

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plain reports whether every byte of s is one a string scan passes over:
// no quote, backslash, control character or non-ASCII byte.
func plain(s []byte) bool {
	for _, c := range s {
		if !strPlain[c] {
			return false
		}
	}
	return true
}

// strPlain marks the bytes a string scan can pass over without a look.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return
}()

func isWS(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func isDelim(c byte) bool { return isWS(c) || c == ',' || c == ']' || c == '}' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// scanString validates the string token at b[i] == '"' and returns the
// index after its closing quote.
func scanString(b []byte, i int) (int, uint8, error) {
	start := i
	i++
	var fl uint8
	for {
		// Eight bytes at a time while none is a quote, a backslash, a
		// control character or non-ASCII (exact: SWAR false positives only
		// appear above a true hit).
		for ; i+8 <= len(b); i += 8 {
			x := binary.LittleEndian.Uint64(b[i : i+8])
			m := ((x - lsb*0x20) | ((x ^ lsb*'"') - lsb) | ((x ^ lsb*'\\') - lsb) | x) & msb
			if m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				goto hit // b[i] is the first byte that is not plain
			}
		}
		for i < len(b) && strPlain[b[i]] {
			i++
		}
		if i >= len(b) {
			return i, fl, malformed(start, "unterminated string")
		}
	hit:
		switch c := b[i]; {
		case c == '"':
			i++
			if fl&flNonASCII != 0 && !utf8.Valid(b[start+1:i-1]) {
				fl |= flBadUTF8
			}
			return i, fl, nil
		case c == '\\':
			fl |= flEsc
			if i+1 >= len(b) {
				return i, fl, malformed(start, "unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, fl, malformed(i, "invalid \\u escape")
				}
				i += 6
			default:
				return i, fl, malformed(i, "invalid escape")
			}
		case c < 0x20:
			return i, fl, malformed(i, "control character in string")
		default:
			fl |= flNonASCII
			i++
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// scanScalar validates a number, true, false or null at b[i].
func scanScalar(b []byte, i int) (int, error) {
	switch b[i] {
	case 't':
		return literal(b, i, "true")
	case 'f':
		return literal(b, i, "false")
	case 'n':
		return literal(b, i, "null")
	}
	return scanNumber(b, i)
}

func literal(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, malformed(i, "invalid literal")
	}
	return i + len(lit), nil
}

// scanNumber validates -?(0|[1-9]d*)(.d+)?([eE][+-]?d+)?
func scanNumber(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return start, malformed(start, "invalid value")
	}
	if i < len(b) && b[i] == '.' {
		i++
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return i, malformed(i, "invalid number")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == j {
			return i, malformed(i, "invalid number")
		}
	}
	return i, nil
}

// skipValue validates the value at b[i] and returns the index after it,
// the union of its flags and its nesting depth (0 for a scalar). It is
// iterative: depth costs one byte of d.stack per level, never Go stack.
func (d *Decoder) skipValue(b []byte, i int) (int, uint8, int, error) {
	if i < len(b) && b[i] == '{' {
		if end, fl, ok := skipFlatObject(b, i); ok {
			return end, fl, 1, nil
		}
	}
	return d.scanValue(b, i)
}

// scanValue is skipValue without its flat-object shortcut: the general
// scan of any value, with a stack for nesting.
func (d *Decoder) scanValue(b []byte, i int) (int, uint8, int, error) {
	stack := d.stack[:0]
	var fl uint8
	depth := 0
	var err error
	for {
		// a value is expected at b[i]
		if i >= len(b) {
			return i, fl, depth, malformed(i, "unexpected end of body")
		}
		switch c := b[i]; c {
		case '{', '[':
			stack = append(stack, c)
			d.stack = stack
			depth = max(depth, len(stack))
			i++
			if i < len(b) && isWS(b[i]) {
				i = skipWS(b, i)
				fl |= flWS
			}
			if i < len(b) && b[i] == c+2 { // '}' == '{'+2, ']' == '['+2
				i++
				stack = stack[:len(stack)-1]
				break
			}
			if c == '{' {
				if i, err = d.objectKey(b, i, &fl); err != nil {
					return i, fl, depth, err
				}
			}
			continue
		case '"':
			var sf uint8
			if i, sf, err = scanString(b, i); err != nil {
				return i, fl, depth, err
			}
			fl |= sf
		default:
			if i, err = scanScalar(b, i); err != nil {
				return i, fl, depth, err
			}
		}
		// after a value: close containers or move to the next member
		for {
			if len(stack) == 0 {
				return i, fl, depth, nil
			}
			if i < len(b) && isWS(b[i]) {
				i = skipWS(b, i)
				fl |= flWS
			}
			if i >= len(b) {
				return i, fl, depth, malformed(i, "unexpected end of body")
			}
			top := stack[len(stack)-1]
			if b[i] == top+2 {
				i++
				stack = stack[:len(stack)-1]
				continue
			}
			if b[i] != ',' {
				return i, fl, depth, malformed(i, "expected ',' or a closing bracket")
			}
			i++
			if i < len(b) && isWS(b[i]) {
				i = skipWS(b, i)
				fl |= flWS
			}
			if top == '{' {
				if i, err = d.objectKey(b, i, &fl); err != nil {
					return i, fl, depth, err
				}
			}
			break
		}
	}
}

// skipFlatObject is skipValue's common case: an object at b[i] whose
// members' values are all strings, numbers, true, false or null, written
// without whitespace (a typical detail). At the first byte outside that
// shape, or any error, it gives up (ok false) and skipValue scans the
// object from its start, so errors and flags come from one place. When ok,
// the result is skipValue's: the end, the strings' flags and depth 1.
func skipFlatObject(b []byte, i int) (end int, fl uint8, ok bool) {
	i++
	if i < len(b) && b[i] == '}' {
		return i + 1, 0, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return 0, 0, false
		}
		var sf uint8
		var err error
		if i, sf, err = scanString(b, i); err != nil || i >= len(b) || b[i] != ':' {
			return 0, 0, false
		}
		fl |= sf
		if i++; i >= len(b) {
			return 0, 0, false
		}
		switch c := b[i]; {
		case c == '"':
			i, sf, err = scanString(b, i)
			fl |= sf
		case c == '-' || c >= '0' && c <= '9' || c == 't' || c == 'f' || c == 'n':
			i, err = scanScalar(b, i)
		default:
			return 0, 0, false
		}
		if err != nil || i >= len(b) {
			return 0, 0, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			return i + 1, fl, true
		default:
			return 0, 0, false
		}
	}
}

// objectKey scans `"key" :` and the whitespace after it.
func (d *Decoder) objectKey(b []byte, i int, fl *uint8) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, malformed(i, "expected an object key")
	}
	i, sf, err := scanString(b, i)
	if err != nil {
		return i, err
	}
	*fl |= sf
	if i < len(b) && isWS(b[i]) {
		i = skipWS(b, i)
		*fl |= flWS
	}
	if i >= len(b) || b[i] != ':' {
		return i, malformed(i, "expected ':'")
	}
	i++
	if i < len(b) && isWS(b[i]) {
		i = skipWS(b, i)
		*fl |= flWS
	}
	return i, nil
}

// appendJSON appends a valid JSON value in compact form.
func appendJSON(dst, v []byte, fl uint8) []byte {
	if fl&flWS == 0 {
		return append(dst, v...)
	}
	return appendCompact(dst, v)
}

// appendCompact appends valid JSON without insignificant whitespace.
func appendCompact(dst, v []byte) []byte {
	inStr := false
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if inStr {
			if c == '\\' {
				i++
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
		} else if isWS(c) {
			dst = append(dst, v[start:i]...)
			start = i + 1
		}
	}
	return append(dst, v[start:]...)
}

// unescape appends the decoded content of a valid JSON string (without
// quotes). Unpaired surrogates become U+FFFD, as in encoding/json.
func unescape(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		j := bytes.IndexByte(s[i:], '\\')
		if j < 0 {
			return append(dst, s[i:]...)
		}
		dst = append(dst, s[i:i+j]...)
		i += j
		c := s[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := rune(hex4(s[i:]))
			i += 4
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if i+6 <= len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if d := utf16.DecodeRune(r, rune(hex4(s[i+2:]))); d != utf8.RuneError {
						r2 = d
						i += 6
					}
				}
				r = r2
			}
			dst = utf8.AppendRune(dst, r)
		default: // " \ /
			dst = append(dst, c)
		}
	}
	return dst
}

func hex4(s []byte) int {
	n := 0
	for _, c := range s[:4] {
		n <<= 4
		switch {
		case c >= '0' && c <= '9':
			n |= int(c - '0')
		case c >= 'a' && c <= 'f':
			n |= int(c - 'a' + 10)
		default:
			n |= int(c - 'A' + 10)
		}
	}
	return n
}
