package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"unicode/utf8"
)

// idSet remembers the event_ids already emitted in the current window.
//
// It stores a 128-bit digest of each id (two independent maphash seeds), not
// the id itself, as a map from the first 64 bits to the second: a Go swiss
// table slot of uint64→uint64 is 16 B plus a control byte, so a window costs
// 20–40 B per event depending on where the table is in its growth
// (BenchmarkIDSetMemory: 27 B at 700k ids, 38 B at 1M), versus 60 B and up
// for a map of id strings. (A map keyed by [2]uint64 would pad each slot to
// 24 B for its empty value.) Two
// ids whose first halves collide (about n²/2⁶⁵, once in ~10¹³ windows of a
// million events) go to a small overflow map, so the set stays exact up to a
// full 128-bit collision: about n²/2¹²⁹, below 10⁻²⁶ for a million events.
// Digests only live for one process and one window, so the random seeds
// need not be stable.
type idSet struct {
	s1, s2   maphash.Seed
	m        map[uint64]uint64
	overflow map[[2]uint64]struct{}
}

func newIDSet() idSet {
	return idSet{s1: maphash.MakeSeed(), s2: maphash.MakeSeed(), m: make(map[uint64]uint64)}
}

func (s *idSet) digest(id []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(s.s1, id), maphash.Bytes(s.s2, id)}
}

// add inserts k and reports whether it was new.
func (s *idSet) add(k [2]uint64) bool {
	v, ok := s.m[k[0]]
	if !ok {
		s.m[k[0]] = k[1]
		return true
	}
	if v == k[1] {
		return false
	}
	if _, ok := s.overflow[k]; ok {
		return false
	}
	if s.overflow == nil {
		s.overflow = make(map[[2]uint64]struct{})
	}
	s.overflow[k] = struct{}{}
	return true
}

// remove forgets k (the undo of a successful add).
func (s *idSet) remove(k [2]uint64) {
	if _, ok := s.overflow[k]; ok {
		delete(s.overflow, k)
		return
	}
	if v, ok := s.m[k[0]]; ok && v == k[1] {
		delete(s.m, k[0])
	}
}

func (s *idSet) len() int { return len(s.m) + len(s.overflow) }

// reset forgets every id. A big window's table is dropped rather than
// cleared so that its memory goes back to the runtime between windows.
func (s *idSet) reset() {
	if len(s.m) > 1<<16 {
		s.m = make(map[uint64]uint64)
	} else {
		clear(s.m)
	}
	s.overflow = nil
}

// tieSet remembers the event_ids of the current tie group: the events of a
// sorted window that share its greatest timestamp so far.
//
// The Events API sorts by (timestamp, id) and repeats an event only on the
// next page, so while timestamps never decrease, a repeated event can only
// come back while the maximum still equals its own timestamp (everything
// between the copies shares it). The ids of earlier timestamps can never
// recur, so memory follows the largest tie group, not the window.
//
// Small groups (nearly always one id: timestamps are µs) are a slice
// scanned linearly; a group that outgrows tieLinear also gets a map index.
// Digests are compared in full (128 bits), so there is no overflow map.
//
// A page that fails must leave no trace, so the state at the start of a
// page is saved: the timestamp and group length, and the group's digests
// themselves only once the page starts a new group (at most one copy per
// page, of one tie group).
type tieSet struct {
	have    bool  // a group exists (some row of the window passed)
	ts      int64 // its timestamp, µs
	keys    [][2]uint64
	idx     map[[2]uint64]struct{}
	indexed bool // idx holds exactly keys; otherwise idx is empty

	// the state before the page being decoded
	pHave  bool
	pTS    int64
	pN     int
	pSaved bool // pKeys holds the pre-page group (the page started a new one)
	pKeys  [][2]uint64
}

// tieLinear is the group size up to which a linear scan beats hashing.
const tieLinear = 16

// tieBig is the capacity beyond which a slice or map is dropped rather than
// kept for reuse, so a freak tie group does not pin its memory.
const tieBig = 1 << 14

// begin marks the start of a page.
func (t *tieSet) begin() {
	t.pHave, t.pTS, t.pN, t.pSaved = t.have, t.ts, len(t.keys), false
}

// rollback restores the state saved by begin.
func (t *tieSet) rollback() {
	t.have, t.ts = t.pHave, t.pTS
	if t.pSaved {
		t.keys = append(t.keys[:0], t.pKeys...)
	} else {
		t.keys = t.keys[:t.pN]
	}
	t.dropIndex()
}

// group starts a new tie group at ts.
func (t *tieSet) group(ts int64) {
	if !t.pSaved {
		// Until now the page only appended to the pre-page group.
		t.pKeys = append(t.pKeys[:0], t.keys[:t.pN]...)
		t.pSaved = true
	}
	if cap(t.keys) > tieBig {
		t.keys = nil
	}
	t.keys = t.keys[:0]
	t.dropIndex()
	t.have, t.ts = true, ts
}

// add inserts k into the current group and reports whether it was new.
func (t *tieSet) add(k [2]uint64) bool {
	if len(t.keys) < tieLinear {
		for _, x := range t.keys {
			if x == k {
				return false
			}
		}
		t.keys = append(t.keys, k)
		return true
	}
	if !t.indexed {
		if t.idx == nil {
			t.idx = make(map[[2]uint64]struct{}, 2*tieLinear)
		}
		for _, x := range t.keys {
			t.idx[x] = struct{}{}
		}
		t.indexed = true
	}
	if _, ok := t.idx[k]; ok {
		return false
	}
	t.idx[k] = struct{}{}
	t.keys = append(t.keys, k)
	return true
}

func (t *tieSet) dropIndex() {
	if !t.indexed {
		return
	}
	if len(t.idx) > tieBig {
		t.idx = nil
	} else {
		clear(t.idx)
	}
	t.indexed = false
}

// reset forgets everything (a new window).
func (t *tieSet) reset() {
	t.have, t.ts = false, 0
	if cap(t.keys) > tieBig {
		t.keys = nil
	}
	if cap(t.pKeys) > tieBig {
		t.pKeys = nil
	}
	t.keys = t.keys[:0]
	t.dropIndex()
	t.begin()
}

func (t *tieSet) len() int { return len(t.keys) }

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
