package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"unicode/utf8"
)

// Stable ids for events without one.
//
// event_id = "h_" + the first 32 hex digits of
// sha256(org + "\n" + canonical JSON of the whole record), where the canonical
// JSON of a value is:
//   - objects: members sorted by the bytes of their decoded (UTF-8) keys,
//     members with equal keys kept in document order, no whitespace;
//   - arrays: elements in order, no whitespace;
//   - strings: decoded, then re-encoded with the fewest escapes: `\"`, `\\`,
//     `\b \f \n \r \t`, `\u00xx` (lowercase hex) for other bytes below 0x20,
//     every other character as literal UTF-8 (so `"\u00e9"` and `"é"` agree);
//     unpaired surrogate escapes become U+FFFD;
//   - numbers, true, false, null: their JSON text unchanged.
// The result depends only on the record's JSON meaning and the org, so the
// same event gets the same id on any page, run or machine.

// canonizer builds canonical JSON with reusable buffers.
type canonizer struct {
	out  []byte   // canonical output; objects are assembled at its tail
	keys []byte   // decoded keys of the objects being sorted
	mems []member // a stack of members of the objects being built
	tmp  []byte
}

type member struct {
	k0, k1 int // decoded key in keys
	v0, v1 int // canonical value in out (top level: v0 is the field index)
}

// hashID returns the id of a record that has none, from its members as
// scanned by the decoder (so top-level values are not scanned again). The
// record must be valid, UTF-8-clean JSON nested at most MaxDepth deep (the
// decoder quarantines anything else before it gets here).
func (c *canonizer) hashID(dst []byte, org string, b []byte, fields []field) []byte {
	c.out = append(c.out[:0], org...)
	c.out = append(c.out, '\n')
	c.keys = c.keys[:0]
	c.mems = c.mems[:0]
	for x := range fields {
		f := &fields[x]
		k0 := len(c.keys)
		if f.kfl&flEsc == 0 {
			c.keys = append(c.keys, b[f.k0+1:f.k1-1]...)
		} else {
			c.keys = unescape(c.keys, b[f.k0+1:f.k1-1])
		}
		c.mems = append(c.mems, member{k0: k0, k1: len(c.keys), v0: x})
	}
	c.sortMembers(c.mems)
	n := len(c.mems)
	c.out = append(c.out, '{')
	for x := range n {
		m := c.mems[x]
		f := &fields[m.v0]
		if x > 0 {
			c.out = append(c.out, ',')
		}
		if f.kfl&flEsc == 0 {
			c.out = append(c.out, b[f.k0:f.k1]...)
		} else {
			c.out = appendCanonString(c.out, c.keys[m.k0:m.k1])
		}
		c.out = append(c.out, ':')
		switch b[f.v0] {
		case '"':
			c.str(b[f.v0:f.v1], f.fl)
		case '{', '[':
			c.value(b, f.v0)
		default:
			c.out = append(c.out, b[f.v0:f.v1]...)
		}
	}
	c.out = append(c.out, '}')
	sum := sha256.Sum256(c.out)
	dst = append(dst, "h_"...)
	return hex.AppendEncode(dst, sum[:16])
}

// str appends the canonical form of a string token.
func (c *canonizer) str(tok []byte, fl uint8) {
	if fl&flEsc == 0 || canonEscapes(tok) {
		c.out = append(c.out, tok...)
		return
	}
	c.tmp = unescape(c.tmp[:0], tok[1:len(tok)-1])
	c.out = appendCanonString(c.out, c.tmp)
}

// canonEscapes reports whether every escape in a string token is the one
// appendCanonString would write, so that the token is already canonical.
func canonEscapes(tok []byte) bool {
	for i := 0; i < len(tok); {
		j := bytes.IndexByte(tok[i:], '\\')
		if j < 0 {
			return true
		}
		i += j + 1
		switch tok[i] {
		case '"', '\\', 'b', 'f', 'n', 'r', 't':
			i++
		default: // \/ and \uXXXX have other canonical forms
			return false
		}
	}
	return true
}

// sortMembers sorts by decoded key with an insertion sort: stable,
// allocation-free, and objects are small.
func (c *canonizer) sortMembers(ms []member) {
	for x := 1; x < len(ms); x++ {
		for y := x; y > 0 && bytes.Compare(c.keys[ms[y].k0:ms[y].k1], c.keys[ms[y-1].k0:ms[y-1].k1]) < 0; y-- {
			ms[y], ms[y-1] = ms[y-1], ms[y]
		}
	}
}

// canonical returns the canonical JSON of raw (for tests and tools).
func canonical(raw []byte) []byte {
	var c canonizer
	c.value(raw, skipWS(raw, 0))
	return c.out
}

// value appends the canonical form of the value at b[i] to c.out and
// returns the index just after it.
func (c *canonizer) value(b []byte, i int) int {
	switch b[i] {
	case '{':
		return c.object(b, i)
	case '[':
		c.out = append(c.out, '[')
		i = skipWS(b, i+1)
		if b[i] == ']' {
			c.out = append(c.out, ']')
			return i + 1
		}
		for {
			i = c.value(b, i)
			i = skipWS(b, i)
			if b[i] == ']' {
				c.out = append(c.out, ']')
				return i + 1
			}
			c.out = append(c.out, ',')
			i = skipWS(b, i+1)
		}
	case '"':
		end, fl, _ := scanString(b, i)
		c.str(b[i:end], fl)
		return end
	default: // number or literal: copy the token
		j := i
		for j < len(b) && !isDelim(b[j]) {
			j++
		}
		c.out = append(c.out, b[i:j]...)
		return j
	}
}

func (c *canonizer) object(b []byte, i int) int {
	base := len(c.mems)
	start := len(c.out)
	i = skipWS(b, i+1)
	for b[i] != '}' {
		end, fl, _ := scanString(b, i)
		k0 := len(c.keys)
		if fl&flEsc == 0 {
			c.keys = append(c.keys, b[i+1:end-1]...)
		} else {
			c.keys = unescape(c.keys, b[i+1:end-1])
		}
		k1 := len(c.keys)
		i = skipWS(b, end)
		i = skipWS(b, i+1) // ':'
		v0 := len(c.out)
		i = c.value(b, i)
		c.mems = append(c.mems, member{k0, k1, v0, len(c.out)})
		i = skipWS(b, i)
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
	}
	ms := c.mems[base:]
	c.sortMembers(ms)
	// Assemble the sorted object after the values, then move it into place.
	asm := len(c.out)
	c.out = append(c.out, '{')
	for x, m := range ms {
		if x > 0 {
			c.out = append(c.out, ',')
		}
		c.out = appendCanonString(c.out, c.keys[m.k0:m.k1])
		c.out = append(c.out, ':')
		c.out = append(c.out, c.out[m.v0:m.v1]...)
	}
	c.out = append(c.out, '}')
	n := copy(c.out[start:], c.out[asm:])
	c.out = c.out[:start+n]
	c.mems = c.mems[:base]
	return i + 1
}

// appendCanonString appends s (valid UTF-8) as a canonical JSON string.
func appendCanonString(dst, s []byte) []byte {
	const hexd = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexd[c>>4], hexd[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// escapeInvalidUTF8 makes raw printable as a valid UTF-8 string for the
// quarantine file: every byte that is not part of a valid UTF-8 sequence is
// written as the four characters `\xNN`. JSON text never contains `\x`
// (it is not a JSON escape), so the original bytes can be recovered exactly.
func escapeInvalidUTF8(raw []byte) string {
	const hexd = "0123456789abcdef"
	out := make([]byte, 0, len(raw)+16)
	for i := 0; i < len(raw); {
		r, n := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && n <= 1 {
			out = append(out, '\\', 'x', hexd[raw[i]>>4], hexd[raw[i]&0xf])
			i++
			continue
		}
		out = append(out, raw[i:i+n]...)
		i += n
	}
	return string(out)
}
