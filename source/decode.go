package source

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// ErrMalformed means a page body is not valid JSON or holds no events
// array. The page as a whole is unusable (a cut or corrupted body), so the
// client retries it; single bad records are quarantined instead.
var ErrMalformed = errors.New("malformed page")

// MalformedError says where a page body stopped being usable. It matches
// ErrMalformed with errors.Is.
type MalformedError struct {
	Offset int    // byte offset in the body
	Msg    string // what was wrong there
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("malformed page: %s at byte %d", e.Msg, e.Offset)
}

// Unwrap returns ErrMalformed.
func (e *MalformedError) Unwrap() error { return ErrMalformed }

func malformed(off int, msg string) error { return &MalformedError{Offset: off, Msg: msg} }

// Quarantine reasons (Quarantined.Reason). They are fixed strings so that
// metrics and queries can group by them.
const (
	ReasonNotObject        = "not a JSON object"
	ReasonMissingTimestamp = "missing timestamp"
	ReasonBadTimestamp     = "unparseable timestamp"
	ReasonOutsideWindow    = "timestamp outside window"
	ReasonOrgMismatch      = "org mismatch"
	ReasonInvalidUTF8      = "invalid UTF-8"
	ReasonTooLarge         = "field too large"
	ReasonTooDeep          = "nesting too deep"
)

const (
	// MaxFieldBytes bounds one column value of one row (a Parquet page and
	// a BigQuery cell stay sane); larger records are quarantined.
	MaxFieldBytes = 1 << 20
	// MaxDepth bounds the nesting of one record (the record object is
	// level 1); deeper records are quarantined. Scanning is iterative, so
	// even absurd nesting costs no stack.
	MaxDepth = 1000
	// MaxPageBytesLimit bounds max_page_bytes: a page's string columns
	// must each fit Arrow's 32-bit offsets (2 GiB), and a column of a
	// page holds at most the page's bytes plus short derived values.
	MaxPageBytesLimit = 1 << 30
)

// autoItemsFields are tried, in document order, when ItemsField is "".
var autoItemsFields = []string{"data", "events", "items", "results", "records"}

// DecodeOptions configures a Decoder.
type DecodeOptions struct {
	// Org is the configured org: it fills org_id, and a record whose org
	// field differs is quarantined ("org mismatch").
	Org string
	// Fields are the key aliases; empty lists get DefaultFields.
	Fields Fields
	// ItemsField is the envelope key of the events array. "" = auto: a bare
	// top-level array, or the first key in document order among
	// data/events/items/results/records whose value is an array (or null,
	// read as an empty page).
	ItemsField string
	// DropOutside skips and counts records outside the window instead of
	// quarantining them: in date mode the server returns whole days, and
	// those records belong to other windows.
	DropOutside bool
	// Margin is how far the walk's request reaches past each end of the
	// window (source.boundary_overlap): records up to Margin before the
	// start or after the end belong to the adjacent windows and are
	// skipped and counted in Outside; records further out are quarantined.
	Margin time.Duration
	// Known is what the sink already holds around the window (see Known).
	// Reset takes the next window's.
	Known Known
}

// Page is one decoded response body.
type Page struct {
	Rec         arrow.RecordBatch // nil when no rows; the caller releases it
	Quarantined []Quarantined
	// Envelope holds the top-level keys other than the events array
	// (next_cursor, page, total_pages, ...) as raw JSON copied out of the
	// body; nil for a bare array.
	Envelope   map[string]json.RawMessage
	Items      int // elements in the events array
	Rows       int // rows in Rec
	Duplicates int // skipped: event_id already seen in this window
	// Held is how many records were skipped because the sink already holds
	// their id for this window (Known.Held): the held copy wins.
	Held int
	// NearDuplicates were skipped because an adjacent window holds their
	// id (Known.Near).
	NearDuplicates int
	Outside        int // skipped by DropOutside or Margin
	// ForeignOrg is the org field of the first record quarantined for an
	// org mismatch (a token of another org), "" if none.
	ForeignOrg string
}

// mapped record fields, in the order of their lookup codes.
const (
	fID = iota
	fTS
	fAction
	fCategory
	fSeverity
	fTitle
	fActor
	fResource
	fSourceIP
	fDetail
	fOrg
	numMapped
)

// schema column of each mapped string field.
var mappedCol = [numMapped]int{
	fID: ColEventID, fAction: ColAction, fCategory: ColCategory, fSeverity: ColSeverity,
	fTitle: ColTitle, fActor: ColActor, fResource: ColResource, fSourceIP: ColSourceIP, fDetail: ColDetail,
}

// field is one member of the record being decoded; offsets are into the body.
type field struct {
	k0, k1 int   // key token, quotes included
	v0, v1 int   // value token
	code   int32 // mapped field<<16 | alias rank, or -1
	fl     uint8 // scan flags of the value
	kfl    uint8 // scan flags of the key
}

func (f *field) kind(b []byte) byte { return b[f.v0] }

// span is a column value: in the body, in the row buffer, or null.
type span struct {
	where  uint8 // spanNull, spanBody, spanRow
	s0, s1 int
}

const (
	spanNull = iota
	spanBody
	spanRow
)

type keyCacheEntry struct {
	key  []byte
	code int32
	// A plain key (strPlain bytes only) of up to 16 bytes also as two
	// zero-padded little-endian words, which record compares with the
	// body; n is its length, or -1 for any other key, and m0, m1 the
	// masks that keep a key's n bytes of two words (keyMasks).
	n      int32
	w0, w1 uint64
	m0, m1 uint64
}

// Decoder turns page bodies into Arrow record batches in Schema. It reuses
// its builders and scratch buffers across pages (one Decoder per walk) and
// is not safe for concurrent use.
//
// It is a single-pass byte scanner: every value is validated once, mapped
// values go from the body straight into the builders, strings are unescaped
// only when they contain a backslash, and nothing is allocated per event
// beyond the Arrow buffers' amortized growth.
type Decoder struct {
	opts DecodeOptions
	orgB []byte
	mem  memory.Allocator

	keys     map[string]int32
	kcache   []keyCacheEntry
	isItems  func(string) bool
	win      Window
	winRange string
	startUS  int64
	endUS    int64

	ids     *IDSet   // every id the window emitted
	pending []digest // digests added by the page being decoded
	// held ids first met (or first found changed) by the page being decoded
	pendingHeld []heldUndo
	known       Known
	marginUS    int64
	rowHash     rowHasher
	day         dayCache    // timeText's last date
	minute      minuteCache // timeText's last minute
	canon       canonizer

	// per page
	pg       Page
	page     int
	ingUS    int64
	appended int
	row      []byte            // arena of transformed values (unescaped, compacted, extra, hash ids)
	cells    []span            // NumColumns per row
	colBytes [NumColumns]int   // bytes of each column's values in cells
	tsv      []arrow.Timestamp // timestamp per row

	// per record
	fields []field
	tmp    []byte
	stack  []byte
	xkeys  extraKeys
}

// NewDecoder returns a Decoder allocating Arrow memory from mem. Call Reset
// with the first window before DecodePage. It holds no Arrow memory
// between pages: the record batches it returns are the caller's to release.
func NewDecoder(mem memory.Allocator, opts DecodeOptions) *Decoder {
	f, def := &opts.Fields, DefaultFields
	for _, p := range []struct {
		dst *[]string
		d   []string
	}{
		{&f.ID, def.ID}, {&f.Timestamp, def.Timestamp}, {&f.Action, def.Action}, {&f.Title, def.Title},
		{&f.Category, def.Category}, {&f.Severity, def.Severity}, {&f.Actor, def.Actor},
		{&f.Resource, def.Resource}, {&f.SourceIP, def.SourceIP}, {&f.Detail, def.Detail}, {&f.OrgID, def.OrgID},
	} {
		if len(*p.dst) == 0 {
			*p.dst = p.d
		}
	}
	d := &Decoder{opts: opts, mem: mem, orgB: []byte(opts.Org), ids: NewIDSet(), keys: map[string]int32{},
		known: opts.Known, marginUS: opts.Margin.Microseconds()}
	// First list and first alias win when a user maps one key twice.
	for _, m := range []struct {
		f       int
		aliases []string
	}{
		{fID, f.ID}, {fTS, f.Timestamp}, {fAction, f.Action}, {fCategory, f.Category},
		{fSeverity, f.Severity}, {fTitle, f.Title}, {fActor, f.Actor}, {fResource, f.Resource},
		{fSourceIP, f.SourceIP}, {fDetail, f.Detail}, {fOrg, f.OrgID},
	} {
		for rank, a := range m.aliases {
			if _, dup := d.keys[a]; !dup {
				d.keys[a] = int32(m.f)<<16 | int32(rank)
			}
		}
	}
	if opts.ItemsField != "" {
		name := opts.ItemsField
		d.isItems = func(k string) bool { return k == name }
	} else {
		d.isItems = func(k string) bool {
			for _, a := range autoItemsFields {
				if k == a {
					return true
				}
			}
			return false
		}
	}
	for i, f := range Schema.Fields() { // materialize builds the columns by type
		want := arrow.Type(arrow.STRING)
		if i == ColTimestamp || i == ColIngestedAt {
			want = arrow.TIMESTAMP
		}
		if f.Type.ID() != want {
			panic(fmt.Sprintf("source: column %d of Schema is %s, not %s", i, f.Type, want))
		}
	}
	return d
}

// Reset starts a window: records are checked against w and k, and a new
// set of emitted event_ids begins (the last one stays the caller's, see IDs).
func (d *Decoder) Reset(w Window, k Known) {
	d.win = w
	d.winRange = w.Range()
	d.startUS = w.Start.UnixMicro()
	d.endUS = w.End.UnixMicro()
	d.known = k
	if n := d.ids.Len(); n > 0 {
		d.ids = NewIDSetSize(n) // windows of an org tend to be alike: no growth on the way
	}
}

// IDs is the set of event ids the current window emitted so far. After the
// walk it is the caller's: the next window's Known.Near.
func (d *Decoder) IDs() *IDSet { return d.ids }

// dedupLen is the number of ids the decoder currently remembers.
func (d *Decoder) dedupLen() int { return d.ids.Len() }

// DecodePage decodes one response body. Rows outside [w.Start,w.End) are
// quarantined (or skipped with DropOutside); ingestedAt fills ingested_at.
// On a body that is not valid JSON or has no events array it returns an
// error wrapping ErrMalformed (a *MalformedError with the byte offset) and
// forgets everything it saw in that body, so the page can be retried.
// Rows + len(Quarantined) + Duplicates + Held + NearDuplicates + Outside
// == Items on success.
func (d *Decoder) DecodePage(body []byte, page int, ingestedAt time.Time) (Page, error) {
	d.pg = Page{}
	d.page = page
	d.ingUS = ingestedAt.UnixMicro()
	d.pending = d.pending[:0]
	d.pendingHeld = d.pendingHeld[:0]
	d.appended = 0
	if cap(d.row) > 32<<20 { // a freak page does not pin its arena for the whole walk
		d.row = nil
	}
	d.row, d.cells, d.tsv = d.row[:0], d.cells[:0], d.tsv[:0]
	d.colBytes = [NumColumns]int{}
	if err := d.decode(body); err != nil {
		for _, k := range d.pending {
			d.ids.remove(k)
		}
		d.known.Held.undo(d.pendingHeld)
		d.pg = Page{}
		return Page{}, fmt.Errorf("decode page %d: %w", page, err)
	}
	pg := d.pg
	d.pg = Page{}
	if d.appended > 0 {
		pg.Rec = d.materialize(body)
		pg.Rows = d.appended
	}
	return pg, nil
}

// materialize fills the builders column by column from the page's cells:
// one exact reservation per column, then unchecked appends, each column's
// buffer written front to back.
func (d *Decoder) materialize(body []byte) arrow.RecordBatch {
	rows := d.appended
	cols := make([]arrow.Array, NumColumns)
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for c := range NumColumns {
		switch c {
		case ColTimestamp:
			cols[c] = d.timestamps(d.tsv[:rows], 0, false)
		case ColIngestedAt:
			cols[c] = d.timestamps(nil, d.ingUS, true)
		default:
			cols[c] = d.strings(body, c, rows)
		}
	}
	return array.NewRecordBatch(Schema, cols, int64(rows))
}

// strings builds string column c of the page's rows straight from the
// spans: one offsets buffer, one data buffer and, if a row is null, a
// validity bitmap. (Appending value by value through a BinaryBuilder cost
// 7% of a sync's CPU.)
func (d *Decoder) strings(body []byte, c, rows int) arrow.Array {
	offBuf := d.buffer(arrow.Int32Traits.BytesRequired(rows + 1))
	offs := arrow.Int32Traits.CastFromBytes(offBuf.Bytes())
	var dataBuf *memory.Buffer
	var validity *memory.Buffer
	nulls := 0
	if c == ColOrgID {
		n := len(d.orgB)
		dataBuf = d.buffer(rows * n)
		data := dataBuf.Bytes()
		for r := range rows {
			offs[r] = int32(r * n)
			copy(data[r*n:], d.orgB)
		}
		offs[rows] = int32(rows * n)
	} else {
		total := d.colBytes[c]
		if total > math.MaxInt32 { // max_page_bytes (MaxPageBytesLimit) rules this out
			panic(fmt.Sprintf("source: column %d of a page holds %d bytes, more than Arrow's 32-bit offsets address", c, total))
		}
		dataBuf = d.buffer(total)
		data := dataBuf.Bytes()
		// The validity bitmap is made when the first null shows up.
		var bits []byte
		at := 0
		for row, r := 0, c; r < len(d.cells); row, r = row+1, r+NumColumns {
			offs[row] = int32(at)
			s := d.cells[r]
			if s.where == spanNull {
				if bits == nil {
					validity = memory.NewResizableBuffer(d.mem)
					validity.Resize(int(bitutil.BytesForBits(int64(rows))))
					bits = validity.Bytes()
					clear(bits)
					bitutil.SetBitsTo(bits, 0, int64(row), true)
				}
				nulls++
				continue
			}
			at += copy(data[at:], d.bytesOf(body, s))
			if bits != nil {
				bitutil.SetBit(bits, row)
			}
		}
		offs[rows] = int32(at)
	}
	data := array.NewData(arrow.BinaryTypes.String, rows, []*memory.Buffer{validity, offBuf, dataBuf}, nil, nulls, 0)
	offBuf.Release()
	dataBuf.Release()
	if validity != nil {
		validity.Release()
	}
	defer data.Release()
	return array.NewStringData(data)
}

// buffer returns an Arrow buffer of n bytes from d.mem for a column the
// caller writes in full: from an allocator that offers it (bufpool), its
// memory is not zeroed first.
func (d *Decoder) buffer(n int) *memory.Buffer {
	if u, ok := d.mem.(interface{ AllocateUnzeroed(int) []byte }); ok {
		return memory.NewBufferWithAllocator(u.AllocateUnzeroed(n), d.mem)
	}
	b := memory.NewResizableBuffer(d.mem)
	b.Resize(n)
	return b
}

// timestamps builds a timestamp column from vals, or of d.appended copies
// of one value when fill is set.
func (d *Decoder) timestamps(vals []arrow.Timestamp, one int64, fill bool) arrow.Array {
	rows := d.appended
	buf := d.buffer(arrow.TimestampTraits.BytesRequired(rows))
	out := arrow.TimestampTraits.CastFromBytes(buf.Bytes())
	if fill {
		for r := range out {
			out[r] = arrow.Timestamp(one)
		}
	} else {
		copy(out, vals)
	}
	data := array.NewData(TimestampType, rows, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	defer data.Release()
	return array.NewTimestampData(data)
}

func (d *Decoder) decode(b []byte) error {
	i := 0
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		i = 3
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return malformed(i, "empty body")
	}
	var err error
	switch b[i] {
	case '[':
		if i, err = d.items(b, i); err != nil {
			return err
		}
	case '{':
		if i, err = d.envelope(b, i); err != nil {
			return err
		}
	default:
		return malformed(i, "body is neither a JSON object nor an array")
	}
	if i = skipWS(b, i); i != len(b) {
		return malformed(i, "data after the JSON value")
	}
	return nil
}

func (d *Decoder) envelope(b []byte, i int) (int, error) {
	env := map[string]json.RawMessage{}
	found, nullItems := false, false
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, malformed(i, "no events array")
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, malformed(i, "expected an object key")
		}
		end, fl, err := scanString(b, i)
		if err != nil {
			return i, err
		}
		var key string
		if fl&flEsc != 0 {
			key = string(unescape(nil, b[i+1:end-1]))
		} else {
			key = string(b[i+1 : end-1])
		}
		i = skipWS(b, end)
		if i >= len(b) || b[i] != ':' {
			return i, malformed(i, "expected ':'")
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return i, malformed(i, "unexpected end of body")
		}
		switch {
		case !found && d.isItems(key) && b[i] == '[':
			found = true
			if i, err = d.items(b, i); err != nil {
				return i, err
			}
		case !found && d.isItems(key) && bytes.HasPrefix(b[i:], []byte("null")):
			nullItems = true // an empty page, unless an array turns up later
			i += 4
		default:
			v0 := i
			if i, _, _, err = d.skipValue(b, i); err != nil {
				return i, err
			}
			if d.opts.ItemsField != "" && !found && key == d.opts.ItemsField {
				return v0, malformed(v0, fmt.Sprintf("events field %q is not an array", key))
			}
			env[key] = json.RawMessage(bytes.Clone(b[v0:i]))
		}
		i = skipWS(b, i)
		if i >= len(b) {
			return i, malformed(i, "unexpected end of body")
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
			continue
		}
		if b[i] != '}' {
			return i, malformed(i, "expected ',' or '}'")
		}
		i++
		break
	}
	if !found && !nullItems {
		if d.opts.ItemsField != "" {
			return i, malformed(i, fmt.Sprintf("no events field %q", d.opts.ItemsField))
		}
		return i, malformed(i, "no events array (looked for a bare array or data/events/items/results/records)")
	}
	d.pg.Envelope = env
	return i, nil
}

// items decodes the events array starting at b[i] == '['.
func (d *Decoder) items(b []byte, i int) (int, error) {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for {
		if i >= len(b) {
			return i, malformed(i, "unexpected end of body in the events array")
		}
		var err error
		if b[i] == '{' {
			i, err = d.record(b, i)
		} else {
			start := i
			var fl uint8
			i, fl, _, err = d.skipValue(b, i)
			if err == nil {
				d.quarantine(b[start:i], fl, ReasonNotObject)
			}
		}
		if err != nil {
			return i, err
		}
		d.pg.Items++
		i = skipWS(b, i)
		if i >= len(b) {
			return i, malformed(i, "unexpected end of body in the events array")
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, malformed(i, "expected ',' or ']' in the events array")
		}
	}
}

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
	d.pg.Quarantined = append(d.pg.Quarantined, Quarantined{
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
	var vals [NumColumns]span
	idInExtra := false
	if w := win[fID]; w >= 0 {
		fd := &d.fields[w]
		switch c := b[fd.v0]; {
		case c == '"' && fd.v1-fd.v0 > 2:
			vals[ColEventID] = d.stringSpan(b, fd)
		case c == '-' || (c >= '0' && c <= '9'):
			vals[ColEventID] = span{spanBody, fd.v0, fd.v1}
		case c != 'n':
			idInExtra = true // "", true, {...}: not an id, but not dropped either
		}
	}
	if vals[ColEventID].where == spanNull {
		s0 := len(d.row)
		d.row = d.canon.hashID(d.row, d.opts.Org, b, d.fields)
		vals[ColEventID] = span{spanRow, s0, len(d.row)}
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
			vals[ColDetail] = span{spanBody, fd.v0, fd.v1} // detailSpan's common case
		} else {
			vals[ColDetail] = d.detailSpan(b, fd)
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
		vals[ColExtra] = span{spanRow, s0, len(d.row)}
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
	k := digestOf(d.bytesOf(b, vals[ColEventID]))
	if h := d.known.Held; h.contains(k) {
		_, undo, marked := h.meet(k, d.rowDigest(b, ts, &vals))
		if marked {
			d.pendingHeld = append(d.pendingHeld, undo)
		}
		d.row = d.row[:rowStart]
		d.pg.Held++
		return nil
	}
	for _, near := range d.known.Near {
		if near.contains(k) {
			d.row = d.row[:rowStart]
			d.pg.NearDuplicates++
			return nil
		}
	}
	if !d.ids.add(k) {
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

// ---- timestamps ----

// parseTimeText parses RFC 3339 and its common relatives:
// YYYY-MM-DD[(T|t| )hh:mm:ss[(.|,)frac][ ][Z|z|±hh:mm|±hhmm|±hh]] — a
// missing zone means UTC, a bare date means midnight UTC. Digits below a
// microsecond are truncated.
func parseTimeText(s []byte) (int64, bool) {
	days, ok := parseDate(s)
	if !ok {
		return 0, false
	}
	return parseClock(s, days)
}

// parseDate reads the YYYY-MM-DD that starts s as days since the epoch.
func parseDate(s []byte) (int64, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return 0, false
	}
	return daysFromCivil(year, month, day), true
}

// timeText is parseTimeText remembering the last minute and the last date
// it read: a page's timestamps nearly all share theirs, and equal first
// sixteen (ten) bytes mean the same minute (day).
func (d *Decoder) timeText(s []byte) (int64, bool) {
	// The common shape, "YYYY-MM-DDTHH:MM:SS.mmmZ": its first 16 bytes
	// (date, hour and minute) repeat from event to event, so the minute
	// parsed last is kept like the date, and only the seconds and
	// milliseconds are read, as fixed digits. Anything else in those
	// places (a seconds value of 60, "12 Z") goes to the full parse.
	if len(s) == 24 && s[16] == ':' && s[19] == '.' && s[23] == 'Z' {
		w0, w1 := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint64(s[8:])
		sec, ok1 := digits(s[17:19])
		ms, ok2 := digits(s[20:23])
		fixed := ok1 && ok2 && sec <= 59
		if fixed && d.minute.ok && w0 == d.minute.w0 && w1 == d.minute.w1 {
			return d.minute.us + sec*1e6 + ms*1e3, true
		}
		us, ok := d.dayClock(s)
		if ok && fixed {
			d.minute = minuteCache{w0: w0, w1: w1, us: us - sec*1e6 - ms*1e3, ok: true}
		}
		return us, ok
	}
	return d.dayClock(s)
}

// minuteCache is the minute timeText read last: its first 16 bytes and its
// microseconds since the epoch.
type minuteCache struct {
	w0, w1 uint64
	us     int64
	ok     bool
}

// dayClock is parseTimeText with the date read last kept (dayCache).
func (d *Decoder) dayClock(s []byte) (int64, bool) {
	if len(s) < 10 {
		return 0, false
	}
	k, k2 := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint16(s[8:])
	if !d.day.ok || k != d.day.k || k2 != d.day.k2 {
		days, ok := parseDate(s)
		if !ok {
			return 0, false
		}
		d.day = dayCache{k: k, k2: k2, days: days, ok: true}
	}
	return parseClock(s, d.day.days)
}

// dayCache is the date timeText read last: its first ten bytes and days.
type dayCache struct {
	k    uint64
	k2   uint16
	ok   bool
	days int64
}

// parseClock reads what follows the date in s (days: the date's days
// since the epoch).
func parseClock(s []byte, days int64) (int64, bool) {
	if len(s) == 10 {
		return days * 86400 * 1e6, true
	}
	if len(s) < 19 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	hour, ok1 := digits(s[11:13])
	minute, ok2 := digits(s[14:16])
	sec, ok3 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	us := ((days*24+hour)*60+minute)*60 + sec
	us *= 1e6
	i := 19
	if i < len(s) && (s[i] == '.' || s[i] == ',') {
		i++
		n := 0
		var frac int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if n < 6 {
				frac = frac*10 + int64(s[i]-'0')
			}
			n++
			i++
		}
		if n == 0 {
			return 0, false
		}
		for k := n; k < 6; k++ {
			frac *= 10
		}
		us += frac
	}
	if i < len(s) && s[i] == ' ' {
		i++
		if i == len(s) {
			return 0, false
		}
	}
	if i == len(s) {
		return us, true
	}
	switch s[i] {
	case 'Z', 'z':
		return us, i+1 == len(s)
	case '+', '-':
		rest := s[i+1:]
		var oh, om int64
		var ok, ok1 bool
		switch len(rest) {
		case 2:
			oh, ok = digits(rest)
		case 4:
			oh, ok = digits(rest[:2])
			om, ok1 = digits(rest[2:])
			ok = ok && ok1
		case 5:
			if rest[2] != ':' {
				return 0, false
			}
			oh, ok = digits(rest[:2])
			om, ok1 = digits(rest[3:])
			ok = ok && ok1
		}
		if !ok || oh > 23 || om > 59 {
			return 0, false
		}
		off := (oh*60 + om) * 60 * 1e6
		if s[i] == '+' {
			return us - off, true
		}
		return us + off, true
	}
	return 0, false
}

// parseTimeNumber reads a Unix time whose unit follows from its magnitude:
// below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
// else nanoseconds. Digits below a microsecond are truncated.
func parseTimeNumber(s []byte) (int64, bool) {
	neg := false
	i := 0
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	var n int64
	nd := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		c := int64(s[i] - '0')
		if n > (math.MaxInt64-c)/10 {
			return 0, false
		}
		n = n*10 + c
		nd++
		i++
	}
	if nd == 0 {
		return 0, false
	}
	var frac int64 // first 6 fraction digits
	if i < len(s) && s[i] == '.' {
		i++
		k := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if k < 6 {
				frac = frac*10 + int64(s[i]-'0')
			}
			k++
			i++
		}
		if k == 0 {
			return 0, false
		}
		for ; k < 6; k++ {
			frac *= 10
		}
	}
	if i < len(s) {
		if s[i] != 'e' && s[i] != 'E' {
			return 0, false
		}
		// Exponent notation is rare enough to take the slow path.
		f, err := strconv.ParseFloat(string(s), 64)
		if err != nil || math.IsNaN(f) || math.Abs(f) >= 1e18 {
			return 0, false
		}
		a := math.Abs(f)
		var us float64
		switch {
		case a < 1e11:
			us = f * 1e6
		case a < 1e14:
			us = f * 1e3
		case a < 1e17:
			us = f
		default:
			us = f / 1e3
		}
		return int64(us), true
	}
	var us int64
	switch {
	case n < 1e11:
		us = n*1e6 + frac
	case n < 1e14:
		us = n*1e3 + frac/1e3
	case n < 1e17:
		us = n
	default:
		us = n / 1e3
	}
	if neg {
		us = -us
	}
	return us, true
}

func digits(s []byte) (int64, bool) {
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to y-m-d (proleptic Gregorian;
// H. Hinnant's algorithm), without time.Date's generality.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// ---- the scanner ----

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
	if i < len(b) && b[i] == '{' && flatObjectsOn {
		if end, fl, ok := skipFlatObject(b, i); ok {
			return end, fl, 1, nil
		}
	}
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

// flatObjectsOn is off only in tests that compare skipFlatObject with the
// general scan.
var flatObjectsOn = true

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

// extraKeys keeps the keys of one record's extra object unique. JSON
// readers disagree on repeated keys (BigQuery's PARSE_JSON keeps the
// first, most others the last), so a repeated member would be lost in one
// of them: the n-th occurrence of key "k" is written as "k#n" instead
// (n = 2, 3, …; the next free n when the record itself has a "k#n").
// Keys are compared as the record spells them, escapes included.
type extraKeys struct {
	row   []byte   // the row arena the keys were appended to
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
