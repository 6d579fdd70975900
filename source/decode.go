package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
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
	Known event.Known
}

// Page is one decoded response body.
type Page struct {
	Rec         arrow.RecordBatch // nil when no rows; the caller releases it
	Quarantined []event.Quarantined
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
	fID: event.ColEventID, fAction: event.ColAction, fCategory: event.ColCategory, fSeverity: event.ColSeverity,
	fTitle: event.ColTitle, fActor: event.ColActor, fResource: event.ColResource, fSourceIP: event.ColSourceIP, fDetail: event.ColDetail,
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
	win      event.Window
	winRange string
	startUS  int64
	endUS    int64

	ids     *event.IDSet   // every id the window emitted
	pending []event.Digest // digests added by the page being decoded
	// held ids first met (or first found changed) by the page being decoded
	pendingHeld []event.HeldUndo
	known       event.Known
	marginUS    int64
	rowHash     event.RowHasher
	day         dayCache    // timeText's last date
	minute      minuteCache // timeText's last minute
	canon       canonizer

	// per page
	pg       Page
	page     int
	ingUS    int64
	appended int
	row      []byte                // arena of transformed values (unescaped, compacted, extra, hash ids)
	cells    []span                // NumColumns per row
	colBytes [event.NumColumns]int // bytes of each column's values in cells
	tsv      []arrow.Timestamp     // timestamp per row

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
	d := &Decoder{opts: opts, mem: mem, orgB: []byte(opts.Org), ids: event.NewIDSet(), keys: map[string]int32{},
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
	for i, f := range event.Schema.Fields() { // materialize builds the columns by type
		want := arrow.Type(arrow.STRING)
		if i == event.ColTimestamp || i == event.ColIngestedAt {
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
func (d *Decoder) Reset(w event.Window, k event.Known) {
	d.win = w
	d.winRange = w.Range()
	d.startUS = w.Start.UnixMicro()
	d.endUS = w.End.UnixMicro()
	d.known = k
	if n := d.ids.Len(); n > 0 {
		d.ids = event.NewIDSetSize(n) // windows of an org tend to be alike: no growth on the way
	}
}

// IDs is the set of event ids the current window emitted so far. After the
// walk it is the caller's: the next window's Known.Near.
func (d *Decoder) IDs() *event.IDSet { return d.ids }

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
	d.colBytes = [event.NumColumns]int{}
	if err := d.decode(body); err != nil {
		for _, k := range d.pending {
			d.ids.Remove(k)
		}
		d.known.Held.Undo(d.pendingHeld)
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
