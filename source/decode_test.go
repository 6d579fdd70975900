package source

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/internal/bufpool"
)

var testIngested = time.Date(2026, 6, 1, 11, 7, 0, 0, time.UTC)

// row is one decoded row: string columns by name (nil = null), timestamps as time.
type row map[string]any

func str(s string) *string { return &s }

func readRows(t *testing.T, rec arrow.RecordBatch) []row {
	t.Helper()
	if rec == nil {
		return nil
	}
	var out []row
	for i := 0; i < int(rec.NumRows()); i++ {
		r := row{}
		for c, f := range rec.Schema().Fields() {
			col := rec.Column(c)
			switch a := col.(type) {
			case *array.String:
				if a.IsNull(i) {
					r[f.Name] = (*string)(nil)
				} else { // a copy: Value aliases the buffer, which Release frees
					r[f.Name] = str(strings.Clone(a.Value(i)))
				}
			case *array.Timestamp:
				if a.IsNull(i) {
					t.Fatalf("column %s row %d is null", f.Name, i)
				}
				r[f.Name] = time.UnixMicro(int64(a.Value(i))).UTC()
			default:
				t.Fatalf("column %s has unexpected array %T", f.Name, col)
			}
		}
		out = append(out, r)
	}
	return out
}

func newTestDecoder(t *testing.T, opts DecodeOptions) *Decoder {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	d := NewDecoder(mem, opts)
	d.Reset(benchWindow, opts.Known)
	t.Cleanup(func() {
		mem.AssertSize(t, 0)
	})
	return d
}

// decodeOne decodes a page holding the given elements and returns its rows.
func decodeOne(t *testing.T, opts DecodeOptions, elems ...string) (Page, []row) {
	t.Helper()
	d := newTestDecoder(t, opts)
	body := `{"data":[` + strings.Join(elems, ",") + `],"next_cursor":null}`
	pg, err := d.DecodePage([]byte(body), 3, testIngested)
	if err != nil {
		t.Fatalf("DecodePage(%s): %v", body, err)
	}
	if pg.Rec != nil {
		t.Cleanup(pg.Rec.Release)
	}
	checkCounts(t, pg)
	return pg, readRows(t, pg.Rec)
}

func checkCounts(t *testing.T, pg Page) {
	t.Helper()
	if got := pg.Rows + len(pg.Quarantined) + pg.Duplicates + pg.Held + pg.NearDuplicates + pg.Outside; got != pg.Items {
		t.Fatalf("rows %d + quarantined %d + duplicates %d + held %d + near %d + outside %d = %d, want items %d",
			pg.Rows, len(pg.Quarantined), pg.Duplicates, pg.Held, pg.NearDuplicates, pg.Outside, got, pg.Items)
	}
	if pg.Rec != nil && int(pg.Rec.NumRows()) != pg.Rows {
		t.Fatalf("Rec has %d rows, Page.Rows = %d", pg.Rec.NumRows(), pg.Rows)
	}
	if pg.Rec == nil && pg.Rows != 0 {
		t.Fatalf("Rec is nil but Rows = %d", pg.Rows)
	}
}

func TestDecodeSchema(t *testing.T) {
	_, _ = decodeOne(t, DecodeOptions{Org: "org_acme"}) // an empty page has no record
	d := newTestDecoder(t, DecodeOptions{Org: "org_acme"})
	pg, err := d.DecodePage(pageBody(genEvents(10, 7, false), ""), 1, testIngested)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Rec.Release()
	if !pg.Rec.Schema().Equal(event.Schema) {
		t.Fatalf("schema\n%v\nwant\n%v", pg.Rec.Schema(), event.Schema)
	}
	for i, f := range pg.Rec.Schema().Fields() {
		w := event.Schema.Field(i)
		if f.Name != w.Name || !arrow.TypeEqual(f.Type, w.Type) || f.Nullable != w.Nullable {
			t.Errorf("field %d = %v, want %v", i, f, w)
		}
		if pg.Rec.Column(i).DataType().ID() != w.Type.ID() {
			t.Errorf("column %d type %v, want %v", i, pg.Rec.Column(i).DataType(), w.Type)
		}
		if !w.Nullable && pg.Rec.Column(i).NullN() != 0 {
			t.Errorf("non-nullable column %s has nulls", w.Name)
		}
	}
	if pg.Rows != 10 {
		t.Fatalf("rows = %d", pg.Rows)
	}
}

const tsOK = `"timestamp":"2026-06-01T10:15:30.123Z"`

func TestDecodeMapping(t *testing.T) {
	at := time.Date(2026, 6, 1, 10, 15, 30, 123e6, time.UTC)
	tests := []struct {
		name string
		in   string
		opts DecodeOptions
		want row // only the listed columns are checked
	}{
		{"example event", `{"id":"evt_01JZ3Q8K7M2N4P6R8T0V2X4Z6B","org_id":"org_acme","timestamp":"2026-06-01T10:15:30.123Z",
 "action":"SECRET_REVEALED","title":"Secret revealed","category":"vault","severity":"low",
 "actor":"alice@acme.example","resource":"vault/prod/db-password","source_ip":"203.0.113.7",
 "detail":{"vault":"prod","secret_type":"PASSWORD","via":"web"}}`, DecodeOptions{}, row{
			"event_id": str("evt_01JZ3Q8K7M2N4P6R8T0V2X4Z6B"), "org_id": str("org_acme"), "timestamp": at,
			"action": str("SECRET_REVEALED"), "title": str("Secret revealed"), "category": str("vault"),
			"severity": str("low"), "actor": str("alice@acme.example"), "resource": str("vault/prod/db-password"),
			"source_ip": str("203.0.113.7"), "detail": str(`{"vault":"prod","secret_type":"PASSWORD","via":"web"}`),
			"extra": (*string)(nil), "ingested_at": testIngested,
		}},
		{"numeric id is its JSON text", `{"id":12345678901234567890,` + tsOK + `}`, DecodeOptions{}, row{"event_id": str("12345678901234567890")}},
		{"absent fields are null", `{"id":"a",` + tsOK + `}`, DecodeOptions{}, row{
			"action": (*string)(nil), "title": (*string)(nil), "actor": (*string)(nil), "detail": (*string)(nil), "extra": (*string)(nil)}},
		{"null fields are null", `{"id":"a",` + tsOK + `,"action":null,"detail":null}`, DecodeOptions{}, row{
			"action": (*string)(nil), "detail": (*string)(nil), "extra": (*string)(nil)}},
		{"escaped strings are decoded", `{"id":"a\"b",` + tsOK + `,"title":"line\nnext \u00e9 \ud83d\ude00 \/"}`, DecodeOptions{}, row{
			"event_id": str(`a"b`), "title": str("line\nnext é 😀 /")}},
		{"lone surrogate becomes U+FFFD", `{"id":"a",` + tsOK + `,"title":"x\ud800y"}`, DecodeOptions{}, row{"title": str("x\uFFFDy")}},
		{"object actor and resource kept as compact JSON", `{"id":"a",` + tsOK + `,"actor": { "type" : "user", "id":"usr_9" , "email":"a@b" },"resource":[1, 2]}`, DecodeOptions{}, row{
			"actor": str(`{"type":"user","id":"usr_9","email":"a@b"}`), "resource": str(`[1,2]`)}},
		{"number and bool text columns", `{"id":"a",` + tsOK + `,"severity":3,"category":true,"title":-1.5e3}`, DecodeOptions{}, row{
			"severity": str("3"), "category": str("true"), "title": str("-1.5e3")}},
		{"detail string holding JSON is that JSON", `{"id":"a",` + tsOK + `,"detail":"{\"vault\": \"prod\", \"n\": [1, 2]}"}`, DecodeOptions{}, row{
			"detail": str(`{"vault":"prod","n":[1,2]}`)}},
		{"detail plain string is a JSON string", `{"id":"a",` + tsOK + `,"detail":"just text"}`, DecodeOptions{}, row{"detail": str(`"just text"`)}},
		{"detail numeric string stays a string", `{"id":"a",` + tsOK + `,"detail":"123"}`, DecodeOptions{}, row{"detail": str(`"123"`)}},
		{"detail broken JSON string stays a string", `{"id":"a",` + tsOK + `,"detail":"{\"a\":"}`, DecodeOptions{}, row{"detail": str(`"{\"a\":"`)}},
		{"detail number", `{"id":"a",` + tsOK + `,"detail":42}`, DecodeOptions{}, row{"detail": str(`42`)}},
		{"detail array compacted", `{"id":"a",` + tsOK + `,"detail":[ 1 , "x" ]}`, DecodeOptions{}, row{"detail": str(`[1,"x"]`)}},
		{"unknown keys land in extra, raw and compact", `{"id":"a",` + tsOK + `,"zeta":{ "k" : [ 1, 2 ] },"alpha":"x\u0041","n":1.50}`, DecodeOptions{}, row{
			"extra": str(`{"zeta":{"k":[1,2]},"alpha":"x\u0041","n":1.50}`)}},
		{"first alias wins, the loser goes to extra", `{"time":"2026-06-01T10:59:00Z","id":"a",` + tsOK + `,"ip":"10.0.0.1","source_ip":"1.2.3.4"}`, DecodeOptions{}, row{
			"timestamp": at, "source_ip": str("1.2.3.4"), "extra": str(`{"time":"2026-06-01T10:59:00Z","ip":"10.0.0.1"}`)}},
		{"a null alias does not beat a value", `{"id":"a","timestamp":null,"occurredAt":"2026-06-01T10:15:30.123Z"}`, DecodeOptions{}, row{
			"timestamp": at, "extra": str(`{"timestamp":null}`)}},
		{"camel keys", `{"eventId":"e1","occurredAt":"2026-06-01T10:15:30.123Z","eventType":"USER_LOGIN","sourceIp":"::1","orgId":"org_acme","level":"high"}`, DecodeOptions{Org: "org_acme"}, row{
			"event_id": str("e1"), "action": str("USER_LOGIN"), "source_ip": str("::1"), "severity": str("high"), "extra": (*string)(nil)}},
		{"configured aliases", `{"uid":"u1","when":"2026-06-01T10:15:30.123Z","id":"not-the-id"}`, DecodeOptions{Fields: Fields{ID: []string{"uid"}, Timestamp: []string{"when"}}}, row{
			"event_id": str("u1"), "timestamp": at, "extra": str(`{"id":"not-the-id"}`)}},
		{"matching org field is mapped, not extra", `{"id":"a",` + tsOK + `,"org_id":"org_acme"}`, DecodeOptions{Org: "org_acme"}, row{"org_id": str("org_acme"), "extra": (*string)(nil)}},
		{"empty id falls back to a hash and stays in extra", `{"id":"",` + tsOK + `}`, DecodeOptions{}, row{"extra": str(`{"id":""}`)}},
		{"unusual whitespace everywhere", "{ \"id\" :\t\"a\" ,\n \"timestamp\" : \"2026-06-01T10:15:30.123Z\" \r\n, \"x\" : [ ] }", DecodeOptions{}, row{
			"event_id": str("a"), "timestamp": at, "extra": str(`{"x":[]}`)}},
		{"duplicate key: the first wins, the second goes to extra", `{"id":"a","id":"b",` + tsOK + `}`, DecodeOptions{}, row{
			"event_id": str("a"), "extra": str(`{"id":"b"}`)}},
		{"repeated keys in extra are renamed, never repeated", `{"id":"a","id":"b","id":"c",` + tsOK + `,"k":1,"k":2,"k#2":3,"k":4}`, DecodeOptions{}, row{
			"event_id": str("a"), "extra": str(`{"id":"b","id#2":"c","k":1,"k#2":2,"k#2#2":3,"k#3":4}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid([]byte(tt.in)) {
				t.Fatalf("test input is not valid JSON: %s", tt.in)
			}
			if tt.opts.Org == "" {
				tt.opts.Org = "org_acme"
			}
			pg, rows := decodeOne(t, tt.opts, tt.in)
			if len(rows) != 1 {
				t.Fatalf("rows = %d, quarantined = %+v", len(rows), pg.Quarantined)
			}
			for col, want := range tt.want {
				got, ok := rows[0][col]
				if !ok {
					t.Fatalf("no column %q", col)
				}
				if !equalCell(got, want) {
					t.Errorf("%s = %s, want %s", col, cellString(got), cellString(want))
				}
			}
			for _, col := range []string{"detail", "extra"} {
				if s, _ := rows[0][col].(*string); s != nil && !json.Valid([]byte(*s)) {
					t.Errorf("%s is not valid JSON: %s", col, *s)
				}
			}
		})
	}
}

func equalCell(a, b any) bool {
	switch x := a.(type) {
	case *string:
		y, ok := b.(*string)
		return ok && (x == nil) == (y == nil) && (x == nil || *x == *y)
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return false
}

func cellString(v any) string {
	if s, ok := v.(*string); ok {
		if s == nil {
			return "<null>"
		}
		return fmt.Sprintf("%q", *s)
	}
	return fmt.Sprint(v)
}

func TestDecodeTimestamps(t *testing.T) {
	tests := []struct {
		in   string // JSON value of "timestamp"
		want string // RFC3339Nano, "" = quarantined as unparseable
	}{
		{`"2026-06-01T10:15:30Z"`, "2026-06-01T10:15:30Z"},
		{`"2026-06-01T10:15:30.123456789Z"`, "2026-06-01T10:15:30.123456Z"},
		{`"2026-06-01T10:15:30.1Z"`, "2026-06-01T10:15:30.1Z"},
		{`"2026-06-01T12:15:30+02:00"`, "2026-06-01T10:15:30Z"},
		{`"2026-06-01T05:45:30-04:30"`, "2026-06-01T10:15:30Z"},
		{`"2026-06-01 10:15:30.5+00:00"`, "2026-06-01T10:15:30.5Z"},
		{`"2026-06-01 10:15:30Z"`, "2026-06-01T10:15:30Z"},
		{`"2026-06-01t10:15:30z"`, "2026-06-01T10:15:30Z"},
		{`"2026-06-01T12:15:30+0200"`, "2026-06-01T10:15:30Z"},
		{`"2026-06-01T12:15:30+02"`, "2026-06-01T10:15:30Z"},
		{`"2026-06-01T10:15:30"`, "2026-06-01T10:15:30Z"}, // no zone: UTC
		{`"2026-06-01T10:15:30,25Z"`, "2026-06-01T10:15:30.25Z"},
		{`1780308930`, "2026-06-01T10:15:30Z"},
		{`1780308930.123456`, "2026-06-01T10:15:30.123456Z"},
		{`1780308930123`, "2026-06-01T10:15:30.123Z"},
		{`1780308930123.9`, "2026-06-01T10:15:30.1239Z"},
		{`1780308930123456.7`, "2026-06-01T10:15:30.123456Z"},
		{`-1.5`, "1969-12-31T23:59:58.5Z"},
		{`1780308930123456`, "2026-06-01T10:15:30.123456Z"},
		{`1780308930123456789`, "2026-06-01T10:15:30.123456Z"},
		{`1.780308930e9`, "2026-06-01T10:15:30Z"},
		{`"1780308930123"`, "2026-06-01T10:15:30.123Z"},
		{`"2026-06-01T10:15:30\u002e5Z"`, "2026-06-01T10:15:30.5Z"},
		{`"2026-02-30T10:15:30Z"`, ""},
		{`"2026-06-01T24:00:00Z"`, ""},
		{`"2026-06-01T10:15:60Z"`, ""},
		{`"2026-06-01T10:15:30.Z"`, ""},
		{`"2026-06-01T10:15:30Zjunk"`, ""},
		{`"2026-06-01T10:15:30+2:00"`, ""},
		{`"yesterday"`, ""},
		{`""`, ""},
		{`true`, ""},
		{`{"t":1}`, ""},
		{`99999999999999999999`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			// the window is wide so that only parsing decides
			d := newTestDecoder(t, DecodeOptions{Org: "o"})
			d.Reset(event.Window{Org: "o", Start: time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, event.Known{})
			pg, err := d.DecodePage([]byte(`[{"id":"a","timestamp":`+tt.in+`}]`), 1, testIngested)
			if err != nil {
				t.Fatal(err)
			}
			checkCounts(t, pg)
			if tt.want == "" {
				if len(pg.Quarantined) != 1 || pg.Quarantined[0].Reason != ReasonBadTimestamp {
					t.Fatalf("want quarantine %q, got rows %d quarantined %+v", ReasonBadTimestamp, pg.Rows, pg.Quarantined)
				}
				return
			}
			if pg.Rec == nil {
				t.Fatalf("no row; quarantined = %+v", pg.Quarantined)
			}
			defer pg.Rec.Release()
			rows := readRows(t, pg.Rec)
			want, err := time.Parse(time.RFC3339Nano, tt.want)
			if err != nil {
				t.Fatal(err)
			}
			if got := rows[0]["timestamp"].(time.Time); !got.Equal(want) {
				t.Errorf("timestamp = %s, want %s", got.Format(time.RFC3339Nano), tt.want)
			}
		})
	}
}

// TestTimeTextCache: the Decoder's timeText, which remembers the last date
// and the last minute, agrees with parseTimeText on a run of timestamps
// that stay on one date or minute, change them, repeat earlier ones, and
// mix in invalid dates, clocks, seconds and fractions after a valid text
// with the same first ten or sixteen bytes.
func TestTimeTextCache(t *testing.T) {
	d := newTestDecoder(t, DecodeOptions{})
	texts := []string{
		"2026-06-01T10:15:30.123Z", "2026-06-01T10:15:31Z", "2026-06-01", "2026-06-01T23:59:59.999999+01:00",
		"2026-06-01Tnonsense", "2026-06-01T25:00:00Z", "2026-06-02T00:00:00Z", "2026-02-30T00:00:00Z",
		"2026-06-01T10:15:30Z", "2026-06-0", "2026-13-01T00:00:00Z", "2024-02-29 12:00:00-0130",
		"2024-02-29T12:00:00", "2025-02-29T12:00:00Z", "2024-02-29x", "x2024-02-29", "",
		// the minute cache: its shape, after the same minute was read
		"2026-06-01T10:15:30.123Z", "2026-06-01T10:15:59.999Z", "2026-06-01T10:15:00.000Z",
		"2026-06-01T10:15:60.000Z", "2026-06-01T10:15:5x.000Z", "2026-06-01T10:15:30.1a3Z",
		"2026-06-01T10:15:30.12 Z", "2026-06-01T10:15:30.123z", "2026-06-01T10:15:30.123Z",
		"2026-06-01t10:15:30.123Z", "2026-06-01 10:15:30.123Z", "2026-06-01T10:15:30.123Z",
		"2026-06-02T10:15:30.123Z", "2026-06-01T10:16:30.123Z", "2026-06-01T24:15:30.123Z",
		"2026-06-01T24:15:30.123Z", "2026-06-01T10:15:30.1+0Z", "2026-06-01T10:15:30,123Z",
	}
	for round := range 2 {
		for _, s := range texts {
			wantUS, wantOK := parseTimeText([]byte(s))
			if us, ok := d.timeText([]byte(s)); us != wantUS || ok != wantOK {
				t.Errorf("round %d: timeText(%q) = %d, %v; parseTimeText: %d, %v", round, s, us, ok, wantUS, wantOK)
			}
		}
	}
}

// TestParseTimeTextMatchesTime compares the hand-written parser with
// time.Parse over many instants, including leap days and pre-1970 dates.
func TestParseTimeTextMatchesTime(t *testing.T) {
	start := time.Date(1899, 12, 31, 23, 59, 59, 0, time.UTC)
	for i := range 20000 {
		tm := start.Add(time.Duration(i)*97*time.Hour + time.Duration(i%1000)*time.Millisecond + time.Duration(i%7)*time.Microsecond)
		for _, layout := range []string{"2006-01-02T15:04:05.999999Z07:00", "2006-01-02 15:04:05.000000-07:00"} {
			loc := time.FixedZone("x", (i%27-13)*1800)
			s := tm.In(loc).Format(layout)
			us, ok := parseTimeText([]byte(s))
			if !ok || us != tm.UnixMicro() {
				t.Fatalf("parseTimeText(%q) = %d, %v; want %d", s, us, ok, tm.UnixMicro())
			}
		}
	}
}

func TestDecodeQuarantine(t *testing.T) {
	tests := []struct {
		name   string
		elem   string
		opts   DecodeOptions
		reason string
	}{
		{"string element", `"just a string"`, DecodeOptions{}, ReasonNotObject},
		{"number element", `42`, DecodeOptions{}, ReasonNotObject},
		{"null element", `null`, DecodeOptions{}, ReasonNotObject},
		{"array element", `[{"id":"a",` + tsOK + `}]`, DecodeOptions{}, ReasonNotObject},
		{"missing timestamp", `{"id":"a","action":"X"}`, DecodeOptions{}, ReasonMissingTimestamp},
		{"null timestamp", `{"id":"a","timestamp":null}`, DecodeOptions{}, ReasonMissingTimestamp},
		{"empty object", `{}`, DecodeOptions{}, ReasonMissingTimestamp},
		{"unparseable timestamp", `{"id":"a","timestamp":"June 1st"}`, DecodeOptions{}, ReasonBadTimestamp},
		{"before the window", `{"id":"a","timestamp":"2026-06-01T09:59:59.999999Z"}`, DecodeOptions{}, ReasonOutsideWindow},
		{"at the window end (half-open)", `{"id":"a","timestamp":"2026-06-01T11:00:00Z"}`, DecodeOptions{}, ReasonOutsideWindow},
		{"org mismatch", `{"id":"a",` + tsOK + `,"org_id":"org_evil"}`, DecodeOptions{}, ReasonOrgMismatch},
		{"org mismatch, camel key", `{"id":"a",` + tsOK + `,"orgId":"org_evil"}`, DecodeOptions{}, ReasonOrgMismatch},
		{"org mismatch, number", `{"id":"a",` + tsOK + `,"org_id":7}`, DecodeOptions{}, ReasonOrgMismatch},
		{"invalid UTF-8 in a value", "{\"id\":\"a\"," + tsOK + ",\"title\":\"bad \xff\xfe byte\"}", DecodeOptions{}, ReasonInvalidUTF8},
		{"invalid UTF-8 in a key", "{\"id\":\"a\"," + tsOK + ",\"k\xc3\":1}", DecodeOptions{}, ReasonInvalidUTF8},
		{"invalid UTF-8 in a non-object", "\"\xff\"", DecodeOptions{}, ReasonNotObject},
		{"string larger than MaxFieldBytes", `{"id":"a",` + tsOK + `,"title":"` + strings.Repeat("x", MaxFieldBytes+1) + `"}`, DecodeOptions{}, ReasonTooLarge},
		{"extra larger than MaxFieldBytes", `{"id":"a",` + tsOK + `,"a":"` + strings.Repeat("x", MaxFieldBytes/2) + `","b":"` + strings.Repeat("y", MaxFieldBytes/2) + `"}`, DecodeOptions{}, ReasonTooLarge},
		{"nesting deeper than MaxDepth", `{"id":"a",` + tsOK + `,"detail":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, DecodeOptions{}, ReasonTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Org = "org_acme"
			pg, rows := decodeOne(t, tt.opts, tt.elem)
			if len(rows) != 0 || len(pg.Quarantined) != 1 {
				t.Fatalf("rows = %d, quarantined = %d; want one quarantined", len(rows), len(pg.Quarantined))
			}
			q := pg.Quarantined[0]
			if q.Reason != tt.reason {
				t.Errorf("reason = %q, want %q", q.Reason, tt.reason)
			}
			if q.Org != "org_acme" || q.Page != 3 || q.Window != benchWindow.Range() {
				t.Errorf("quarantined = {Org:%q Page:%d Window:%q}", q.Org, q.Page, q.Window)
			}
			if !utf8.ValidString(q.Raw) {
				t.Errorf("Raw is not valid UTF-8: %q", q.Raw)
			}
			if utf8.ValidString(tt.elem) && q.Raw != tt.elem {
				t.Errorf("Raw = %.200q, want the element %.200q", q.Raw, tt.elem)
			}
			line, err := json.Marshal(q)
			if err != nil || !json.Valid(line) {
				t.Fatalf("quarantine line %s: %v", line, err)
			}
		})
	}
}

func TestQuarantineRawEscapesInvalidUTF8(t *testing.T) {
	pg, _ := decodeOne(t, DecodeOptions{Org: "org_acme"}, "{\"id\":\"a\","+tsOK+",\"t\":\"\xffé\xc3\"}")
	if len(pg.Quarantined) != 1 {
		t.Fatalf("quarantined = %d", len(pg.Quarantined))
	}
	want := `{"id":"a",` + tsOK + `,"t":"\xffé\xc3"}`
	if got := pg.Quarantined[0].Raw; got != want {
		t.Fatalf("Raw = %q, want %q", got, want)
	}
}

func TestDecodeDropOutside(t *testing.T) {
	pg, rows := decodeOne(t, DecodeOptions{Org: "org_acme", DropOutside: true},
		`{"id":"early","timestamp":"2026-06-01T00:00:00Z"}`,
		`{"id":"in",`+tsOK+`}`,
		`{"id":"late","timestamp":"2026-06-01T23:00:00Z"}`,
		`{"id":"bad","timestamp":"nope"}`)
	if pg.Outside != 2 || len(rows) != 1 || len(pg.Quarantined) != 1 || pg.Items != 4 {
		t.Fatalf("outside %d rows %d quarantined %d items %d", pg.Outside, len(rows), len(pg.Quarantined), pg.Items)
	}
	if id := rows[0]["event_id"].(*string); *id != "in" {
		t.Fatalf("kept %q", *id)
	}
}

func TestDecodeProfiles(t *testing.T) {
	evs := genEvents(5, 3, false)
	join := func(evs [][]byte) string {
		s := make([]string, len(evs))
		for i, e := range evs {
			s[i] = string(e)
		}
		return strings.Join(s, ",")
	}
	tests := []struct {
		name     string
		body     string
		opts     DecodeOptions
		rows     int
		envelope map[string]string // nil = Envelope must be nil
	}{
		{"default", `{"data":[` + join(evs) + `],"next_cursor":"abc=="}`, DecodeOptions{}, 5, map[string]string{"next_cursor": `"abc=="`}},
		{"default, last page", `{"next_cursor":null,"data":[` + join(evs) + `]}`, DecodeOptions{}, 5, map[string]string{"next_cursor": `null`}},
		{"page", `{"events":[` + join(evs) + `],"page":2,"total_pages":7}`, DecodeOptions{}, 5, map[string]string{"page": `2`, "total_pages": `7`}},
		{"envelope values raw", `{"meta":{ "a" : [1, 2] },"items":[` + join(evs) + `]}`, DecodeOptions{}, 5, map[string]string{"meta": `{ "a" : [1, 2] }`}},
		{"link: bare array", "\n [" + join(evs) + "] \n", DecodeOptions{}, 5, nil},
		{"camel", `{"data":[` + join(genEvents(5, 3, true)) + `],"next_cursor":null}`, DecodeOptions{}, 5, map[string]string{"next_cursor": `null`}},
		{"configured items field", `{"data":"not this","hits":[` + join(evs) + `]}`, DecodeOptions{ItemsField: "hits"}, 5, map[string]string{"data": `"not this"`}},
		{"auto skips a non-array candidate", `{"data":{"x":1},"results":[` + join(evs) + `]}`, DecodeOptions{}, 5, map[string]string{"data": `{"x":1}`}},
		{"first array candidate wins", `{"records":[` + join(evs[:2]) + `],"data":[` + join(evs) + `]}`, DecodeOptions{}, 2, map[string]string{"data": `[` + join(evs) + `]`}},
		{"null items is an empty page", `{"data":null,"next_cursor":null}`, DecodeOptions{}, 0, map[string]string{"next_cursor": `null`}},
		{"a null candidate yields to a later array", `{"data":null,"events":[` + join(evs) + `]}`, DecodeOptions{}, 5, map[string]string{}},
		{"empty array", `{"data":[],"next_cursor":null}`, DecodeOptions{}, 0, map[string]string{"next_cursor": `null`}},
		{"byte order mark", "\xef\xbb\xbf[" + join(evs) + "]", DecodeOptions{}, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Org = "org_acme"
			d := newTestDecoder(t, tt.opts)
			pg, err := d.DecodePage([]byte(tt.body), 1, testIngested)
			if err != nil {
				t.Fatal(err)
			}
			if pg.Rec != nil {
				defer pg.Rec.Release()
			}
			checkCounts(t, pg)
			if pg.Rows != tt.rows || len(pg.Quarantined) != 0 {
				t.Fatalf("rows %d quarantined %+v, want %d rows", pg.Rows, pg.Quarantined, tt.rows)
			}
			if tt.envelope == nil {
				if pg.Envelope != nil {
					t.Fatalf("Envelope = %v, want nil", pg.Envelope)
				}
				return
			}
			if len(pg.Envelope) != len(tt.envelope) {
				t.Fatalf("Envelope has %d keys: %v", len(pg.Envelope), pg.Envelope)
			}
			for k, v := range tt.envelope {
				if got := string(pg.Envelope[k]); got != v {
					t.Errorf("Envelope[%q] = %s, want %s", k, got, v)
				}
			}
		})
	}
}

func TestDecodeCamelProfileRows(t *testing.T) {
	evs := genEvents(3, 9, true)
	d := newTestDecoder(t, DecodeOptions{Org: "org_acme"})
	pg, err := d.DecodePage(pageBody(evs, ""), 1, testIngested)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Rec.Release()
	rows := readRows(t, pg.Rec)
	for i, r := range rows {
		var ev struct {
			Actor, Resource json.RawMessage
			Detail          string
			SourceIP        string `json:"sourceIp"`
		}
		if err := json.Unmarshal(evs[i], &ev); err != nil {
			t.Fatal(err)
		}
		if got := *r["actor"].(*string); got != string(ev.Actor) {
			t.Errorf("actor = %s, want %s", got, ev.Actor)
		}
		if got := *r["resource"].(*string); got != string(ev.Resource) {
			t.Errorf("resource = %s, want %s", got, ev.Resource)
		}
		if got := *r["detail"].(*string); got != ev.Detail {
			t.Errorf("detail = %s, want %s", got, ev.Detail)
		}
		if got := *r["source_ip"].(*string); got != ev.SourceIP {
			t.Errorf("source_ip = %s, want %s", got, ev.SourceIP)
		}
		id := *r["event_id"].(*string)
		if want := expectedHashID("org_acme", evs[i]); id != want {
			t.Errorf("event_id = %s, want %s", id, want)
		}
		if r["extra"].(*string) != nil {
			t.Errorf("extra = %s, want null", *r["extra"].(*string))
		}
	}
}

// expectedHashID computes the documented hash id independently: the
// canonical form through encoding/json (which sorts map keys), with its
// HTML escaping switched off.
func expectedHashID(org string, raw []byte) string {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	var sb strings.Builder
	enc := json.NewEncoder(&sb)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(err)
	}
	canon := strings.TrimSuffix(sb.String(), "\n")
	// encoding/json escapes U+2028/2029; the canonical form does not.
	canon = strings.NewReplacer(`\u2028`, "\u2028", `\u2029`, "\u2029").Replace(canon)
	sum := sha256.Sum256([]byte(org + "\n" + canon))
	return "h_" + hex.EncodeToString(sum[:])[:32]
}

func TestHashIDStable(t *testing.T) {
	base := `{"timestamp":"2026-06-01T10:15:30.123Z","action":"X","actor":{"type":"user","id":"usr_9"},"detail":"{\"a\":1}","n":1.50,"s":"é<>&\u2028","k":[true,null]}`
	same := []string{
		base,
		`{ "k" : [ true , null ] , "s" : "\u00e9\u003c\u003e\u0026\u2028", "n":1.50, "detail":"{\"a\":1}", "actor":{"id":"usr_9","type":"user"},"action":"\u0058","timestamp":"2026-06-01T10:15:30.123Z"}`,
	}
	var ids []string
	for _, s := range same {
		_, rows := decodeOne(t, DecodeOptions{Org: "org_acme"}, s)
		if len(rows) != 1 {
			t.Fatalf("no row for %s", s)
		}
		ids = append(ids, *rows[0]["event_id"].(*string))
	}
	if ids[0] != ids[1] {
		t.Fatalf("same event, different ids: %v", ids)
	}
	if want := expectedHashID("org_acme", []byte(base)); ids[0] != want {
		t.Fatalf("id = %s, want %s (sha256 of the documented canonical form)", ids[0], want)
	}
	if !strings.HasPrefix(ids[0], "h_") || len(ids[0]) != 34 {
		t.Fatalf("id %q is not h_ + 32 hex digits", ids[0])
	}
	// Another org or another value gives another id.
	_, rows := decodeOne(t, DecodeOptions{Org: "org_other"}, base)
	if got := *rows[0]["event_id"].(*string); got == ids[0] {
		t.Fatal("the org is not part of the hash")
	}
	_, rows = decodeOne(t, DecodeOptions{Org: "org_acme"}, strings.Replace(base, `1.50`, `1.51`, 1))
	if got := *rows[0]["event_id"].(*string); got == ids[0] {
		t.Fatal("a changed value kept the id")
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":{"d":[3, {"z":0,"y":"\n\u0001"}],"c":null}}`, `{"a":{"c":null,"d":[3,{"y":"\n\u0001","z":0}]},"b":1}`},
		{`{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
		{`{"a":2,"a":1}`, `{"a":2,"a":1}`},
		{`[ ]`, `[]`},
		{`{ }`, `{}`},
		{`"\/\"\\\b\f\t\r"`, `"/\"\\\b\f\t\r"`},
		{`-0.0e+1`, `-0.0e+1`},
	}
	for _, tt := range tests {
		if got := string(canonical([]byte(tt.in))); got != tt.want {
			t.Errorf("canonical(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

// TestDecodeDedup: duplicates are dropped in any order.
func TestDecodeDedup(t *testing.T) {
	evs := genEvents(30, 5, false)
	camel := genEvents(30, 5, true)
	for _, tc := range []struct {
		name string
		evs  [][]byte
	}{{"ids", evs}, {"hash ids", camel}} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDecoder(t, DecodeOptions{Org: "org_acme"})
			decode := func(evs [][]byte) Page {
				t.Helper()
				pg, err := d.DecodePage(pageBody(evs, ""), 1, testIngested)
				if err != nil {
					t.Fatal(err)
				}
				if pg.Rec != nil {
					t.Cleanup(pg.Rec.Release)
				}
				checkCounts(t, pg)
				return pg
			}
			// pages overlap by 5 events, and one event repeats inside page 2
			p1 := decode(tc.evs[:15])
			p2 := decode(append(append([][]byte{}, tc.evs[10:25]...), tc.evs[12]))
			p3 := decode(tc.evs[20:])
			if p1.Duplicates != 0 || p2.Duplicates != 6 || p3.Duplicates != 5 {
				t.Fatalf("duplicates %d %d %d, want 0 6 5", p1.Duplicates, p2.Duplicates, p3.Duplicates)
			}
			if total := p1.Rows + p2.Rows + p3.Rows; total != 30 {
				t.Fatalf("rows %d, want 30", total)
			}
			seen := map[string]bool{}
			for _, p := range []Page{p1, p2, p3} {
				for _, r := range readRows(t, p.Rec) {
					id := *r["event_id"].(*string)
					if seen[id] {
						t.Fatalf("id %s emitted twice", id)
					}
					seen[id] = true
				}
			}
			// a new window forgets the ids
			d.Reset(benchWindow, event.Known{})
			if p := decode(tc.evs[:15]); p.Duplicates != 0 || p.Rows != 15 {
				t.Fatalf("after Reset: rows %d duplicates %d", p.Rows, p.Duplicates)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	ev := string(genEvents(1, 1, false)[0])
	tests := []struct {
		name string
		body string
		off  int // expected offset, -1 = any
	}{
		{"empty", "", 0},
		{"whitespace", "  \n", 3},
		{"not JSON", "<html>502 Bad Gateway</html>", 0},
		{"a string", `"data"`, 0},
		{"cut inside a record", `{"data":[` + ev[:200], -1},
		{"cut between records", `{"data":[` + ev + `,`, -1},
		{"cut after the array", `{"data":[` + ev + `],"next_cursor":`, -1},
		{"cut in the envelope", `{"data":[` + ev + `],"next_cur`, -1},
		{"no events array", `{"next_cursor":null}`, -1},
		{"empty object", `{}`, -1},
		{"error body", `{"error":{"code":"internal","message":"boom"}}`, -1},
		{"configured items field missing", `{"data":[]}`, -1},
		{"trailing garbage", `{"data":[]} x`, 12},
		{"two values", `[] []`, 3},
		{"missing comma", `[{"id":"a"} {"id":"b"}]`, 12},
		{"trailing comma", `[{"id":"a"},]`, 12},
		{"bad literal", `[{"id":tru}]`, 7},
		{"bad number", `[{"id":01}]`, 8},
		{"bad escape", `[{"id":"a\x"}]`, 9},
		{"control character", "[{\"id\":\"a\nb\"}]", 9},
		{"unquoted key", `[{id:"a"}]`, 2},
		{"bad nested value", `[{"id":"a","d":{"x":[1,2}}]`, 24},
		{"unclosed deep nesting", `[{"d":` + strings.Repeat("[", 5000), -1},
		{"deep nesting in a non-object", `[` + strings.Repeat("[", 100000), -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := DecodeOptions{Org: "org_acme"}
			if tt.name == "configured items field missing" {
				opts.ItemsField = "events"
			}
			d := newTestDecoder(t, opts)
			pg, err := d.DecodePage([]byte(tt.body), 4, testIngested)
			if err == nil {
				if pg.Rec != nil {
					pg.Rec.Release()
				}
				t.Fatalf("no error; page %+v", pg)
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("error %v is not a *MalformedError", err)
			}
			if tt.off >= 0 && me.Offset != tt.off {
				t.Errorf("offset = %d, want %d (%v)", me.Offset, tt.off, err)
			}
			if !strings.Contains(err.Error(), "page 4") {
				t.Errorf("error %q does not name the page", err)
			}
			if pg.Rec != nil || pg.Rows != 0 {
				t.Errorf("a failed page returned rows")
			}
		})
	}
}

// TestDecodeRetryAfterCut: a page that fails half-way leaves no trace,
// so its retry yields every row (nothing is mistaken for a duplicate).
func TestDecodeRetryAfterCut(t *testing.T) {
	body := pageBody(genEvents(50, 11, false), "")
	d := newTestDecoder(t, DecodeOptions{Org: "org_acme"})
	_, err := d.DecodePage(body[:len(body)*3/4], 1, testIngested)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("cut body: %v", err)
	}
	pg, err := d.DecodePage(body, 1, testIngested)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Rec.Release()
	if pg.Rows != 50 || pg.Duplicates != 0 {
		t.Fatalf("retry: rows %d duplicates %d", pg.Rows, pg.Duplicates)
	}
}

// TestDecodeManyPagesNoLeak reuses one decoder over many pages of every
// shape, releasing each record, and checks that all Arrow memory returns.
func TestDecodeManyPagesNoLeak(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	d := NewDecoder(mem, DecodeOptions{Org: "org_acme"})
	d.Reset(benchWindow, event.Known{})
	total := 0
	for p := range 60 {
		var body []byte
		switch p % 4 {
		case 0:
			body = pageBody(genEvents(200, uint64(p), false), "next")
		case 1:
			body = pageBody(genEvents(150, uint64(p), true), "")
		case 2:
			body = []byte(`{"data":[1,{"id":"x"}],"next_cursor":null}`) // only quarantine, no record
		case 3:
			body = pageBody(genEvents(100, uint64(p), false), "")[:500] // malformed
		}
		pg, err := d.DecodePage(body, p, testIngested)
		if p%4 == 3 {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("page %d: %v", p, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("page %d: %v", p, err)
		}
		checkCounts(t, pg)
		total += pg.Rows
		if pg.Rec != nil {
			pg.Rec.Release()
		}
	}
	mem.AssertSize(t, 0)
	if total != 15*200+15*150 {
		t.Fatalf("rows = %d", total)
	}
}

// TestKeyCacheWords: record's inline key cache compares short keys as two
// words and then skips their scan. Keys of 3, 8, 9, 16 and 18 bytes that
// differ from the cached key at the same position only in their last
// byte, or that extend it by a byte, must not take its field; a key too
// close to the end of the body for a 16-byte load takes the slow path and
// still maps.
func TestKeyCacheWords(t *testing.T) {
	opts := DecodeOptions{Fields: Fields{
		Action: []string{"act"}, Actor: []string{"actor_nm"}, SourceIP: []string{"source_ip"},
		Resource: []string{"resource_name_16"}, Title: []string{"title_of_the_event"},
	}}
	const ts = `"timestamp":"2026-06-01T10:15:30.123Z"`
	known := `{"id":"e%d",` + ts + `,"act":"a","actor_nm":"u","source_ip":"1.1.1.1","resource_name_16":"r","title_of_the_event":"t"}`
	other := `{"id":"e%d",` + ts + `,"acu":"a","actor_nn":"u","source_iq":"1.1.1.1","resource_name_17":"r","title_of_the_evenu":"t"}`
	longer := `{"id":"e%d",` + ts + `,"actx":"a","actor_nmx":"u","source_ipx":"1.1.1.1","resource_name_16x":"r","title_of_the_eventx":"t"}`
	_, rows := decodeOne(t, opts, fmt.Sprintf(known, 1), fmt.Sprintf(other, 2), fmt.Sprintf(known, 3), fmt.Sprintf(longer, 4), fmt.Sprintf(known, 5))
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5", len(rows))
	}
	cols := []string{"action", "actor", "source_ip", "resource", "title"}
	for _, r := range []int{0, 2, 4} {
		for _, c := range cols {
			if rows[r][c].(*string) == nil {
				t.Errorf("row %d: %s is null, want its value", r, c)
			}
		}
		if e := rows[r]["extra"].(*string); e != nil {
			t.Errorf("row %d: extra %s, want null", r, *e)
		}
	}
	for _, r := range []int{1, 3} {
		for _, c := range cols {
			if v := rows[r][c].(*string); v != nil {
				t.Errorf("row %d: %s = %q from a key that only resembles its alias", r, c, *v)
			}
		}
	}
	if e := rows[1]["extra"].(*string); e == nil || !strings.Contains(*e, `"acu":"a"`) || !strings.Contains(*e, `"title_of_the_evenu":"t"`) {
		t.Errorf("row 1: extra %v, want the five unmapped members", e)
	}

	// a bare array: the last key ends 4 bytes before the end of the body
	d := newTestDecoder(t, opts)
	pg, err := d.DecodePage([]byte(`[{"id":"e1",`+ts+`,"act":"a"},{"id":"e2",`+ts+`,"act":"b"}]`), 1, testIngested)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Rec.Release()
	tail := readRows(t, pg.Rec)
	if len(tail) != 2 || *tail[1]["action"].(*string) != "b" {
		t.Fatalf("bare array rows %v, want action b in the second", tail)
	}
}

// TestNullsAfterValues: a column's validity bitmap, made when its first
// null shows up, keeps the rows before it valid.
func TestNullsAfterValues(t *testing.T) {
	const ts = `"timestamp":"2026-06-01T10:15:30.123Z"`
	var elems []string
	want := []*string{str("a0"), str("a1"), nil, str("a3"), nil, nil, str("a6"), str("a7"), str("a8"), nil}
	for i, w := range want {
		if w == nil {
			elems = append(elems, fmt.Sprintf(`{"id":"e%d",%s,"action":null}`, i, ts))
		} else {
			elems = append(elems, fmt.Sprintf(`{"id":"e%d",%s,"action":%q}`, i, ts, *w))
		}
	}
	_, rows := decodeOne(t, DecodeOptions{}, elems...)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	for i, w := range want {
		got := rows[i]["action"].(*string)
		if (got == nil) != (w == nil) || (got != nil && *got != *w) {
			t.Errorf("row %d: action %v, want %v", i, cellString(got), cellString(w))
		}
	}
}

// TestFlatObjectSameAsGeneral: skipValue's shortcut for flat objects
// (skipFlatObject) returns what the general scan returns, end, flags,
// depth and error alike, on flat objects and on every way out of that
// shape: whitespace, nesting, escapes, non-ASCII and invalid UTF-8, bad
// literals and numbers, and each object cut short at every byte.
func TestFlatObjectSameAsGeneral(t *testing.T) {
	objects := []string{
		`{}`, `{"a":1}`, `{"a":"b"}`, `{"vault":"finance","secret_type":"DATABASE","via":"mobile","n":-12.5e+3,"ok":true,"no":false,"x":null}`,
		`{"a":"b\"c","d":"\u00e9"}`, `{"é":"ü"}`, "{\"a\":\"\xff\"}", "{\"a\xfe\":1}",
		`{ "a":1}`, `{"a" :1}`, `{"a": 1}`, `{"a":1 }`, `{"a":1, "b":2}`, "{\"a\":1\n}",
		`{"a":{"b":1}}`, `{"a":[1,2]}`, `{"a":[]}`, `{"a":{}}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{"a":+1}`, `{"a":.5}`,
		`{"a":1,}`, `{,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{"a":1"b":2}`, `{"a":"\x"}`, "{\"a\":\"\x01\"}",
		`{"a":1}}`, `{"a":1},{"b":2}`, `{"a":1]`,
	}
	check := func(t *testing.T, body []byte, at int) {
		t.Helper()
		d := NewDecoder(memory.DefaultAllocator, DecodeOptions{Org: "o"})
		e1, f1, p1, err1 := d.skipValue(body, at)
		e2, f2, p2, err2 := d.scanValue(body, at)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) ||
			(err1 == nil && (e1 != e2 || f1 != f2 || p1 != p2)) {
			t.Errorf("%q at %d: shortcut (%d, %#x, %d, %v), general (%d, %#x, %d, %v)", body, at, e1, f1, p1, err1, e2, f2, p2, err2)
		}
	}
	flatSeen := 0
	for _, o := range objects {
		body := []byte("[" + o + "]")
		check(t, body, 1)
		if _, _, ok := skipFlatObject(body, 1); ok {
			flatSeen++
		}
		for cut := 2; cut < len(body); cut++ {
			check(t, body[:cut], 1)
		}
	}
	if flatSeen < 6 {
		t.Fatalf("only %d test objects took the shortcut", flatSeen)
	}
}

// TestDecodeIntoDirtyBuffers: from a bufpool.Pool the decoder takes its
// column buffers unzeroed (Decoder.buffer), so it must write every byte of
// them. Pages of realistic events, of the camel profile and of nulls and
// extras, decoded into buffers that were all 0xFF when freed, read back as
// they do from Go's allocator.
func TestDecodeIntoDirtyBuffers(t *testing.T) {
	pool := bufpool.New(64 << 20)
	var dirty [][]byte
	for range 40 {
		for _, n := range []int{5000, 40_000, 200_000, 500_000} {
			b := pool.Allocate(n)
			for i := range b {
				b[i] = 0xFF
			}
			dirty = append(dirty, b)
		}
	}
	for _, b := range dirty {
		pool.Free(b)
	}
	bodies := [][]byte{
		pageBody(genEvents(1000, 7, false), "c"),
		pageBody(genEvents(300, 8, true), ""),
		[]byte(`{"data":[{"id":"a",` + tsOK + `},{"id":"b",` + tsOK + `,"title":null,"detail":{"k":1}},{"id":"c",` + tsOK + `,"extra_key":[1]}]}`),
	}
	for i, body := range bodies {
		want := decodeRows(t, NewDecoder(memory.NewGoAllocator(), DecodeOptions{Org: "org_acme"}), body)
		got := decodeRows(t, NewDecoder(pool, DecodeOptions{Org: "org_acme"}), body)
		if len(want) == 0 || !reflect.DeepEqual(got, want) {
			t.Fatalf("page %d: %d rows from dirty pool buffers differ from %d rows from Go's allocator", i, len(got), len(want))
		}
	}
}

func decodeRows(t *testing.T, d *Decoder, body []byte) []row {
	t.Helper()
	d.Reset(benchWindow, event.Known{})
	pg, err := d.DecodePage(body, 1, testIngested)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Rec.Release()
	return readRows(t, pg.Rec)
}

// TestDecodeExtraKeysUnique: however many members repeat a key, extra
// names each once (a JSON reader that keeps the first of a repeated key,
// as BigQuery's PARSE_JSON does, loses nothing), and every value is kept.
func TestDecodeExtraKeysUnique(t *testing.T) {
	var in strings.Builder
	in.WriteString(`{"id":"a","timestamp":"2026-06-01T10:30:00Z"`)
	const n = 40
	for i := range n {
		fmt.Fprintf(&in, `,"x":%d,"y%d":%d`, i, i%3, i)
	}
	in.WriteString(`,"x#7":"literal"}`)
	_, rows := decodeOne(t, DecodeOptions{Org: "org_acme"}, in.String())
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	extra := rows[0]["extra"].(*string)
	if extra == nil {
		t.Fatal("no extra")
	}
	dec := json.NewDecoder(strings.NewReader(*extra))
	seen := map[string]bool{}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("extra is not an object: %s", *extra)
	}
	values := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		k := tok.(string)
		if seen[k] {
			t.Fatalf("key %q twice in extra: %s", k, *extra)
		}
		seen[k] = true
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		values++
	}
	if want := 2*n + 1; values != want {
		t.Fatalf("%d members in extra, want %d: %s", values, want, *extra)
	}
	if !seen["x"] || !seen["x#40"] || !seen["x#7"] || !seen["x#7#2"] || !seen["y0#14"] {
		t.Errorf("renamed keys not as documented: %s", *extra)
	}
}
