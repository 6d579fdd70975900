package source

import (
	"bytes"
	"encoding/binary"
	"strconv"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
)

// One record of a page: its members mapped to the schema's columns, the
// rest gathered into extra, the timestamp and org checked, the id deduped.

func (d *Decoder) quarantine(raw []byte, fl uint8, reason string) {
	var s string
	if fl&flBadUTF8 != 0 {
		s = escapeInvalidUTF8(raw)
	} else {
		s = string(raw)
	}
	org := d.opts.Org
	if org == "" {
		org = d.win.Org
	}
	d.pg.Quarantined = append(d.pg.Quarantined, event.Quarantined{
		Org: org, Window: d.winRange, Page: d.page, Reason: reason, Raw: s,
	})
}

// lookup maps a key (without quotes) to its field code. Records of one page
// nearly always list their keys in the same order, so a cache by position
// answers most lookups with one short compare.
func (d *Decoder) lookup(key []byte, esc bool, pos int) int32 {
	if pos < len(d.kcache) && !esc {
		if e := &d.kcache[pos]; string(e.key) == string(key) {
			return e.code
		}
	}
	name := key
	if esc {
		d.tmp = unescape(d.tmp[:0], key)
		name = d.tmp
	}
	code, ok := d.keys[string(name)]
	if !ok {
		code = -1
	}
	if !esc && pos < 64 {
		for len(d.kcache) <= pos {
			d.kcache = append(d.kcache, keyCacheEntry{code: -1})
		}
		e := &d.kcache[pos]
		e.key = append(e.key[:0], key...)
		e.code = code
		e.n = -1
		if len(key) <= 16 && plain(key) {
			var w [16]byte
			copy(w[:], key)
			e.n = int32(len(key))
			e.m0, e.m1 = keyMasks(len(key))
			e.w0, e.w1 = keyWords(w[:], e.m0, e.m1)
		}
	}
	return code
}

// keyWords packs the first 16 bytes of p into two little-endian words
// under a key's masks (keyMasks), so zero past the key: the form in which
// lookup caches a key and record compares the body with it.
func keyWords(p []byte, m0, m1 uint64) (w0, w1 uint64) {
	return binary.LittleEndian.Uint64(p) & m0, binary.LittleEndian.Uint64(p[8:16]) & m1
}

// keyMasks are the masks keyWords applies for a key of n bytes (at most
// 16): ones over the key's bytes, zeros past them.
func keyMasks(n int) (m0, m1 uint64) {
	if n < 8 {
		return 1<<(8*n) - 1, 0
	}
	return ^uint64(0), 1<<(8*(n-8)) - 1 // n == 16: 1<<64 is 0 in Go, so all ones
}

// record decodes one object element at b[i] == '{' into a row, a
// quarantine entry or a skip, and returns the index after it.
func (d *Decoder) record(b []byte, i int) (int, error) {
	start := i
	d.fields = d.fields[:0]
	var recFl uint8
	depth := 1
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			if i >= len(b) || b[i] != '"' {
				return i, malformed(i, "expected an object key")
			}
			k0 := i
			// The key cache by position (lookup), its common case inline:
			// where the cached key is plain and short, the bytes after the
			// quote are compared with it as two words; if they match and a
			// quote follows, this key is that one, already validated, and
			// is not scanned again.
			var (
				k1   int
				kfl  uint8
				code int32
				hit  bool
			)
			if pos := len(d.fields); pos < len(d.kcache) && i+18 <= len(b) {
				if e := &d.kcache[pos]; e.n >= 0 && b[i+1+int(e.n)] == '"' {
					if w0, w1 := keyWords(b[i+1:], e.m0, e.m1); e.w0 == w0 && e.w1 == w1 {
						k1, code, hit = i+2+int(e.n), e.code, true
					}
				}
			}
			var err error
			if !hit {
				if k1, kfl, err = scanString(b, i); err != nil {
					return k1, err
				}
				code = d.lookup(b[k0+1:k1-1], kfl&flEsc != 0, len(d.fields))
			}
			i = k1
			if i+1 < len(b) && b[i] == ':' && b[i+1] > ' ' {
				i++ // the common case: no whitespace around the colon
			} else {
				if i < len(b) && b[i] != ':' {
					i = skipWS(b, i)
				}
				if i >= len(b) || b[i] != ':' {
					return i, malformed(i, "expected ':'")
				}
				i++
				if i < len(b) && b[i] <= ' ' {
					i = skipWS(b, i)
				}
				if i >= len(b) {
					return i, malformed(i, "unexpected end of body")
				}
			}
			v0 := i
			var vfl uint8
			switch c := b[i]; {
			case c == '"':
				i, vfl, err = scanString(b, i)
			case c == '{' || c == '[':
				var dep int
				i, vfl, dep, err = d.skipValue(b, i)
				depth = max(depth, dep+1)
			default:
				i, err = scanScalar(b, i)
			}
			if err != nil {
				return i, err
			}
			recFl |= kfl | vfl
			d.fields = append(d.fields, field{k0: k0, k1: k1, v0: v0, v1: i, code: code, fl: vfl, kfl: kfl})
			if i+1 < len(b) && b[i] == ',' && b[i+1] == '"' {
				i++ // the common case: the next key right after the comma
				continue
			}
			if i < len(b) && b[i] <= ' ' {
				i = skipWS(b, i)
			}
			if i >= len(b) {
				return i, malformed(i, "unexpected end of body")
			}
			if b[i] == ',' {
				i++
				if i < len(b) && b[i] <= ' ' {
					i = skipWS(b, i)
				}
				continue
			}
			if b[i] != '}' {
				return i, malformed(i, "expected ',' or '}'")
			}
			i++
			break
		}
	}
	return i, d.mapRecord(b, start, i, recFl, depth)
}

// mapRecord maps a scanned record b[start:end] whose members are in d.fields.
func (d *Decoder) mapRecord(b []byte, start, end int, recFl uint8, depth int) error {
	raw := b[start:end]
	switch {
	case recFl&flBadUTF8 != 0:
		d.quarantine(raw, recFl, ReasonInvalidUTF8)
		return nil
	case depth > MaxDepth:
		d.quarantine(raw, recFl, ReasonTooDeep)
		return nil
	}
	// Winner per mapped field: a non-null value beats null, then the
	// earlier alias wins, then the earlier member. Losers go to extra.
	var win [numMapped]int
	for f := range win {
		win[f] = -1
	}
	allWin := true // every member is its field's winner: nothing for extra
	for x := range d.fields {
		fd := &d.fields[x]
		if fd.code < 0 {
			allWin = false
			continue
		}
		f := fd.code >> 16
		w := win[f]
		if w < 0 {
			win[f] = x
			continue
		}
		allWin = false
		wd := &d.fields[w]
		fNull, wNull := b[fd.v0] == 'n', b[wd.v0] == 'n'
		if (wNull && !fNull) || (wNull == fNull && fd.code&0xffff < wd.code&0xffff) {
			win[f] = x
		}
	}

	// timestamp
	w := win[fTS]
	if w < 0 || b[d.fields[w].v0] == 'n' {
		d.quarantine(raw, recFl, ReasonMissingTimestamp)
		return nil
	}
	ts, ok := d.parseTimestamp(b, &d.fields[w])
	if !ok {
		d.quarantine(raw, recFl, ReasonBadTimestamp)
		return nil
	}
	// org
	if w := win[fOrg]; w >= 0 && len(d.orgB) > 0 {
		fd := &d.fields[w]
		var v []byte
		switch b[fd.v0] {
		case 'n':
		case '"':
			v = d.stringContent(b, fd, &d.tmp)
			if !bytes.Equal(v, d.orgB) {
				d.foreign(v)
				d.quarantine(raw, recFl, ReasonOrgMismatch)
				return nil
			}
		default:
			if v = b[fd.v0:fd.v1]; !bytes.Equal(v, d.orgB) {
				d.foreign(v)
				d.quarantine(raw, recFl, ReasonOrgMismatch)
				return nil
			}
		}
	}
	if ts < d.startUS || ts >= d.endUS {
		// The request reaches Margin past each end (boundary_overlap):
		// those records are the adjacent windows', not bad data.
		if d.opts.DropOutside || (d.marginUS > 0 && ts >= d.startUS-d.marginUS && ts <= d.endUS+d.marginUS) {
			d.pg.Outside++
		} else {
			d.quarantine(raw, recFl, ReasonOutsideWindow)
		}
		return nil
	}

	// Column values; transformed ones go to the page arena d.row.
	rowStart := len(d.row)
	var vals [event.NumColumns]span
	idInExtra := false
	if w := win[fID]; w >= 0 {
		fd := &d.fields[w]
		switch c := b[fd.v0]; {
		case c == '"' && fd.v1-fd.v0 > 2:
			vals[event.ColEventID] = d.stringSpan(b, fd)
		case c == '-' || (c >= '0' && c <= '9'):
			vals[event.ColEventID] = span{spanBody, fd.v0, fd.v1}
		case c != 'n':
			idInExtra = true // "", true, {...}: not an id, but not dropped either
		}
	}
	if vals[event.ColEventID].where == spanNull {
		s0 := len(d.row)
		d.row = d.canon.hashID(d.row, d.opts.Org, b, d.fields)
		vals[event.ColEventID] = span{spanRow, s0, len(d.row)}
	}
	for f := fAction; f <= fSourceIP; f++ {
		if w := win[f]; w >= 0 {
			if fd := &d.fields[w]; b[fd.v0] == '"' && fd.fl&flEsc == 0 {
				vals[mappedCol[f]] = span{spanBody, fd.v0 + 1, fd.v1 - 1} // textSpan's common case
			} else {
				vals[mappedCol[f]] = d.textSpan(b, fd)
			}
		}
	}
	if w := win[fDetail]; w >= 0 {
		if fd := &d.fields[w]; b[fd.v0] == '{' && fd.fl&flWS == 0 {
			vals[event.ColDetail] = span{spanBody, fd.v0, fd.v1} // detailSpan's common case
		} else {
			vals[event.ColDetail] = d.detailSpan(b, fd)
		}
	}
	// extra: every member that is not a winner, in document order, each
	// key once (a repeat is renamed, see extraKeys).
	s0 := len(d.row)
	d.xkeys.reset()
	for x := 0; (!allWin || idInExtra) && x < len(d.fields); x++ {
		fd := &d.fields[x]
		if fd.code >= 0 && win[fd.code>>16] == x && !(idInExtra && fd.code>>16 == fID) {
			continue
		}
		if len(d.row) == s0 {
			d.row = append(d.row, '{')
		} else {
			d.row = append(d.row, ',')
		}
		d.row = d.xkeys.appendKey(d.row, b[fd.k0:fd.k1])
		d.row = append(d.row, ':')
		d.row = appendJSON(d.row, b[fd.v0:fd.v1], fd.fl)
	}
	if len(d.row) > s0 {
		d.row = append(d.row, '}')
		vals[event.ColExtra] = span{spanRow, s0, len(d.row)}
	}
	// No value is longer than the raw record, or than a hashed id: the
	// transforms (unescaping, compacting, gathering extra members) only
	// shorten. So only a record near the limit has values to measure.
	for c := 0; len(raw) > MaxFieldBytes-64 && c < len(vals); c++ {
		if vals[c].s1-vals[c].s0 > MaxFieldBytes {
			d.row = d.row[:rowStart]
			d.quarantine(raw, recFl, ReasonTooLarge)
			return nil
		}
	}

	// One id, once per org: the sink's copy of the window wins, then a
	// copy in an adjacent window, then the first copy of this window.
	k := event.DigestOf(d.bytesOf(b, vals[event.ColEventID]))
	if h := d.known.Held; h.Contains(k) {
		_, undo, marked := h.Meet(k, d.rowDigest(b, ts, &vals))
		if marked {
			d.pendingHeld = append(d.pendingHeld, undo)
		}
		d.row = d.row[:rowStart]
		d.pg.Held++
		return nil
	}
	for _, near := range d.known.Near {
		if near.Contains(k) {
			d.row = d.row[:rowStart]
			d.pg.NearDuplicates++
			return nil
		}
	}
	if !d.ids.AddDigest(k) {
		d.row = d.row[:rowStart]
		d.pg.Duplicates++
		return nil
	}
	d.pending = append(d.pending, k)
	d.cells = append(d.cells, vals[:]...)
	for c := range vals {
		d.colBytes[c] += vals[c].s1 - vals[c].s0
	}
	d.tsv = append(d.tsv, arrow.Timestamp(ts))
	d.appended++
	return nil
}

func (d *Decoder) bytesOf(b []byte, s span) []byte {
	if s.where == spanRow {
		return d.row[s.s0:s.s1]
	}
	return b[s.s0:s.s1]
}

// stringContent returns the decoded content of a string value, unescaping
// into *buf only when needed.
func (d *Decoder) stringContent(b []byte, fd *field, buf *[]byte) []byte {
	if fd.fl&flEsc == 0 {
		return b[fd.v0+1 : fd.v1-1]
	}
	*buf = unescape((*buf)[:0], b[fd.v0+1:fd.v1-1])
	return *buf
}

// stringSpan is the decoded content of a string value.
func (d *Decoder) stringSpan(b []byte, fd *field) span {
	if fd.fl&flEsc == 0 {
		return span{spanBody, fd.v0 + 1, fd.v1 - 1}
	}
	s0 := len(d.row)
	d.row = unescape(d.row, b[fd.v0+1:fd.v1-1])
	return span{spanRow, s0, len(d.row)}
}

// textSpan is a text column: a string as is, an object or array as compact
// JSON, a number or boolean as its JSON text, null as null.
func (d *Decoder) textSpan(b []byte, fd *field) span {
	switch b[fd.v0] {
	case '"':
		return d.stringSpan(b, fd)
	case 'n':
		return span{}
	}
	return d.jsonSpan(b, fd.v0, fd.v1, fd.fl)
}

// jsonSpan is a valid JSON value in compact form.
func (d *Decoder) jsonSpan(b []byte, v0, v1 int, fl uint8) span {
	if fl&flWS == 0 {
		return span{spanBody, v0, v1}
	}
	s0 := len(d.row)
	d.row = appendCompact(d.row, b[v0:v1])
	return span{spanRow, s0, len(d.row)}
}

// detailSpan keeps detail as valid JSON text. A string that holds a JSON
// object or array (the camel profile's detail) becomes that JSON; any other
// string stays a JSON string literal, so that "123" is not turned into a
// number.
func (d *Decoder) detailSpan(b []byte, fd *field) span {
	switch b[fd.v0] {
	case 'n':
		return span{}
	case '"':
	default:
		return d.jsonSpan(b, fd.v0, fd.v1, fd.fl)
	}
	s := d.stringContent(b, fd, &d.tmp)
	j := skipWS(s, 0)
	if j < len(s) && (s[j] == '{' || s[j] == '[') {
		end, fl, depth, err := d.skipValue(s, j)
		if err == nil && depth < MaxDepth && skipWS(s, end) == len(s) {
			s0 := len(d.row)
			d.row = appendJSON(d.row, s[j:end], fl)
			return span{spanRow, s0, len(d.row)}
		}
	}
	// the raw token is already a valid, compact JSON string literal
	return span{spanBody, fd.v0, fd.v1}
}

// parseTimestamp returns the value of a timestamp member in µs since the
// Unix epoch.
func (d *Decoder) parseTimestamp(b []byte, fd *field) (int64, bool) {
	switch c := b[fd.v0]; {
	case c == '"':
		s := d.stringContent(b, fd, &d.tmp)
		if us, ok := d.timeText(s); ok {
			return us, true
		}
		// a number in a string: "1717236930" or "1717236930123"
		if len(s) > 0 && s[0] != '.' && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
			return parseTimeNumber(s)
		}
		return 0, false
	case c == '-' || (c >= '0' && c <= '9'):
		return parseTimeNumber(b[fd.v0:fd.v1])
	}
	return 0, false
}

// extraKeys keeps the keys of one record's extra object unique. JSON
// readers disagree on repeated keys (BigQuery's PARSE_JSON keeps the
// first, most others the last), so a repeated member would be lost in one
// of them: the n-th occurrence of key "k" is written as "k#n" instead
// (n = 2, 3, …; the next free n when the record itself has a "k#n").
// Keys are compared as the record spells them, escapes included.
type extraKeys struct {
	spans [][2]int // each written key (quoted) in row
	set   map[string]struct{}
}

func (x *extraKeys) reset() {
	x.spans = x.spans[:0]
	clear(x.set)
}

// extraKeysLinear: up to this many keys a new one is compared with each;
// beyond, a set is kept (a record may have many thousands of members).
const extraKeysLinear = 8

func (x *extraKeys) has(row, key []byte) bool {
	if len(x.spans) <= extraKeysLinear {
		for _, sp := range x.spans {
			if bytes.Equal(row[sp[0]:sp[1]], key) {
				return true
			}
		}
		return false
	}
	if len(x.set) == 0 {
		if x.set == nil {
			x.set = map[string]struct{}{}
		}
		for _, sp := range x.spans {
			x.set[string(row[sp[0]:sp[1]])] = struct{}{}
		}
	}
	_, ok := x.set[string(key)]
	return ok
}

// appendKey appends key (a quoted JSON string) to row, renamed when an
// earlier member of the object has it, and remembers it.
func (x *extraKeys) appendKey(row, key []byte) []byte {
	start := len(row)
	row = append(row, key...)
	for n := 2; x.has(row, row[start:]); n++ {
		row = append(row[:start], key[:len(key)-1]...)
		row = append(row, '#')
		row = strconv.AppendInt(row, int64(n), 10)
		row = append(row, '"')
	}
	x.spans = append(x.spans, [2]int{start, len(row)})
	if len(x.spans) > extraKeysLinear+1 && len(x.set) > 0 {
		x.set[string(row[start:])] = struct{}{}
	}
	return row
}
