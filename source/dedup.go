package source

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"sync"
	"unicode/utf8"
)

// Event ids are remembered as 128-bit digests (two maphash seeds), not as
// strings: a set costs 21–43 B per id depending on where its table is in
// its growth, against 60 B and up for a map of strings. The seeds are the
// process's, shared by every set, so the one digest the decoder takes of a
// record's id is looked up in the window's own set and in the sets of what
// the sink already holds (Known) alike. Two different ids collide only on
// a full 128-bit collision: about n²/2¹²⁹, below 10⁻²⁶ for a million ids.
// Digests live only in one process, so the seeds need not be stable.
var idSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// digest is an event id's key in every id set.
type digest [2]uint64

func digestOf(id []byte) digest {
	return digest{maphash.Bytes(idSeeds[0], id), maphash.Bytes(idSeeds[1], id)}
}

// IDSet is a set of event ids. It is not safe for concurrent use; a set
// handed to a walk (Known) must not change while the walk runs.
//
// It is an open-addressing table of digests with linear probing: a digest
// is already uniformly random, so its first half indexes the table
// without hashing again, and a lookup or insert touches one cache line
// almost always. A slot costs 16 bytes; the table doubles at 3/4 full, so
// a set holds an id in 21–43 bytes. The all-zero digest marks an empty
// slot; an id whose digest is all zero (one in 2¹²⁸) is kept in zero.
type IDSet struct {
	slots []digest
	n     int  // digests in slots
	zero  bool // the all-zero digest is in the set
}

// NewIDSet returns an empty set.
func NewIDSet() *IDSet { return NewIDSetSize(0) }

// NewIDSetSize returns an empty set that holds n ids before it grows.
func NewIDSetSize(n int) *IDSet {
	size := 16
	for size*3/4 < n {
		size *= 2
	}
	return &IDSet{slots: make([]digest, size)}
}

// Add inserts id and reports whether it was new.
func (s *IDSet) Add(id string) bool { return s.add(digestOf([]byte(id))) }

// Has reports whether id is in the set.
func (s *IDSet) Has(id string) bool { return s != nil && s.has(digestOf([]byte(id))) }

// Len is the number of ids in the set.
func (s *IDSet) Len() int {
	if s == nil {
		return 0
	}
	if s.zero {
		return s.n + 1
	}
	return s.n
}

// find returns the slot of k, or of the empty slot where k would go.
func (s *IDSet) find(k digest) int {
	mask := len(s.slots) - 1
	for i := int(k[0]) & mask; ; i = (i + 1) & mask {
		if v := s.slots[i]; v == k || v == (digest{}) {
			return i
		}
	}
}

func (s *IDSet) has(k digest) bool {
	if k == (digest{}) {
		return s.zero
	}
	return s.slots[s.find(k)] == k
}

// add inserts k and reports whether it was new.
func (s *IDSet) add(k digest) bool {
	if k == (digest{}) {
		was := s.zero
		s.zero = true
		return !was
	}
	i := s.find(k)
	if s.slots[i] == k {
		return false
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
		i = s.find(k)
	}
	s.slots[i] = k
	s.n++
	return true
}

func (s *IDSet) grow() {
	old := s.slots
	s.slots = make([]digest, 2*len(old))
	for _, v := range old {
		if v != (digest{}) {
			s.slots[s.find(v)] = v
		}
	}
}

// remove forgets k (the undo of a successful add). Linear probing keeps
// every digest reachable from its home slot without gaps, so the digests
// after the freed slot are moved back into it where their probe allows
// (backward-shift deletion, no tombstones).
func (s *IDSet) remove(k digest) {
	if k == (digest{}) {
		s.zero = false
		return
	}
	i := s.find(k)
	if s.slots[i] != k {
		return
	}
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != (digest{}); j = (j + 1) & mask {
		home := int(s.slots[j][0]) & mask
		// j's digest may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = digest{}
	s.n--
}

// HeldSet is what a sink already holds for one window: every event id of
// the window's unit with a digest of the row's content (RowDigester). A
// walk of the window marks the ids it meets again, and so does the sink
// for rows written to it, so that afterwards the runner knows what the API
// no longer returns (Missing) and which rows came back with other content
// (Changed). The held copy always wins: the archive never rewrites or drops
// a row it holds. It is safe for concurrent use (a walk marks it while the
// sink writes the walk's pages).
type HeldSet struct {
	mu      sync.Mutex
	m       map[digest]heldRow
	seen    int
	changed int
}

type heldRow struct {
	content uint64
	seen    bool
	changed bool
}

// NewHeldSet returns an empty set sized for n rows.
func NewHeldSet(n int) *HeldSet { return &HeldSet{m: make(map[digest]heldRow, n)} }

// Add records a held row. A repeated id keeps its first content.
func (h *HeldSet) Add(id string, content uint64) {
	k := digestOf([]byte(id))
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[k]; !ok {
		h.m[k] = heldRow{content: content}
	}
}

// Len is the number of distinct ids held.
func (h *HeldSet) Len() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// Seen is how many held ids the walk met again.
func (h *HeldSet) Seen() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen
}

// Missing is how many held ids the walk did not meet: events the API no
// longer returns for the window (they stay in the sink).
func (h *HeldSet) Missing() int { return h.Len() - h.Seen() }

// Changed is how many held ids came back with other content (the held copy
// was kept).
func (h *HeldSet) Changed() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// Has reports whether id is held.
func (h *HeldSet) Has(id string) bool { return h.contains(digestOf([]byte(id))) }

// MeetRow marks the held id of row i of the batch rd was reset to, as a
// walk meets it (see meet), and reports whether it is held: a sink skips
// such a row, whose held copy wins.
func (h *HeldSet) MeetRow(id string, rd *RowDigester, i int) bool {
	k := digestOf([]byte(id))
	if !h.contains(k) {
		return false
	}
	h.meet(k, rd.Digest(i))
	return true
}

// meet marks k seen (and changed when its content differs) if it is held,
// and reports whether it is, with its marks before the call when this call
// changed them (so a failed page can restore them with undo).
func (h *HeldSet) meet(k digest, content uint64) (held bool, undo heldUndo, marked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.m[k]
	if !ok {
		return false, heldUndo{}, false
	}
	was := r
	if !r.seen {
		r.seen = true
		h.seen++
	}
	if !r.changed && content != r.content {
		r.changed = true
		h.changed++
	}
	if r == was {
		return true, heldUndo{}, false
	}
	h.m[k] = r
	return true, heldUndo{k: k, was: was}, true
}

// heldUndo is a held row's marks before a page changed them.
type heldUndo struct {
	k   digest
	was heldRow
}

// undo restores marks changed by a page that then failed to decode, latest
// first, so the page leaves no trace.
func (h *HeldSet) undo(us []heldUndo) {
	if len(us) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(us) - 1; i >= 0; i-- {
		u := us[i]
		r := h.m[u.k]
		if r.seen && !u.was.seen {
			h.seen--
		}
		if r.changed && !u.was.changed {
			h.changed--
		}
		h.m[u.k] = u.was
	}
}

// contains makes a HeldSet an IDLookup: the next window's walk checks its
// records against this window's held ids.
func (h *HeldSet) contains(k digest) bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[k]
	return ok
}

// Known is what the sink already holds around one window, handed to its
// walk so that an id is archived once per org:
//   - Held: the window's own unit. A record whose id is held is dropped
//     (the held copy wins) and marked met.
//   - Near: ids held by, or just archived in, the adjacent windows. A
//     record whose id is there is a repeat across windows: dropped and
//     counted in Page.NearDuplicates.
//
// The sets must not change while the walk runs.
type Known struct {
	Held *HeldSet
	Near []IDLookup
}

// IDLookup is a set of ids a walk checks records against: an *IDSet or a
// *HeldSet.
type IDLookup interface{ contains(digest) bool }

func (s *IDSet) contains(k digest) bool { return s != nil && s.has(k) }

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
