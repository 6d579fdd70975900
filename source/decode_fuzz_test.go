package source

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// FuzzDecodePage: any body either decodes into a consistent Page or fails
// with ErrMalformed — never a panic. Seeds live in
// testdata/fuzz/FuzzDecodePage.
func FuzzDecodePage(f *testing.F) {
	f.Add(pageBody(genEvents(3, 1, false), "c"))
	f.Add(pageBody(genEvents(3, 1, true), ""))
	f.Fuzz(func(t *testing.T, body []byte) {
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		for _, dropOutside := range []bool{false, true} {
			d := NewDecoder(mem, DecodeOptions{Org: "org_acme", DropOutside: dropOutside})
			d.Reset(benchWindow, event.Known{})
			pg, err := d.DecodePage(body, 1, testIngested)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				if pg.Rec != nil || pg.Items != 0 || pg.Quarantined != nil {
					t.Fatalf("failed page carries data: %+v", pg)
				}
				if top := bytes.TrimLeft(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), " \t\r\n"); len(top) > 0 && top[0] == '[' && json.Valid(body) {
					t.Fatalf("valid bare array refused: %v", err)
				}
				continue
			}
			if !json.Valid(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf"))) {
				t.Fatalf("invalid JSON accepted")
			}
			checkPage(t, pg)
			// The same body again in the same window: every row is now a
			// duplicate.
			pg2, err := d.DecodePage(body, 2, testIngested)
			if err != nil {
				t.Fatalf("second decode: %v", err)
			}
			checkPage(t, pg2)
			if pg2.Rows != 0 || pg2.Duplicates != pg.Rows+pg.Duplicates {
				t.Fatalf("second decode: rows %d duplicates %d, first rows %d duplicates %d", pg2.Rows, pg2.Duplicates, pg.Rows, pg.Duplicates)
			}
			for _, p := range []Page{pg, pg2} {
				if p.Rec != nil {
					p.Rec.Release()
				}
			}
		}
	})
}

func checkPage(t *testing.T, pg Page) {
	t.Helper()
	checkCounts(t, pg)
	for _, q := range pg.Quarantined {
		if !utf8.ValidString(q.Raw) || q.Reason == "" {
			t.Fatalf("bad quarantine entry %+v", q)
		}
	}
	if pg.Rec == nil {
		return
	}
	if !pg.Rec.Schema().Equal(event.Schema) {
		t.Fatalf("schema %v", pg.Rec.Schema())
	}
	ids, _ := pg.Rec.Column(event.ColEventID).(*array.String)
	ts, _ := pg.Rec.Column(event.ColTimestamp).(*array.Timestamp)
	for i := 0; i < int(pg.Rec.NumRows()); i++ {
		if ids.IsNull(i) || ids.Value(i) == "" {
			t.Fatalf("row %d: empty event_id", i)
		}
		if us := int64(ts.Value(i)); us < benchWindow.Start.UnixMicro() || us >= benchWindow.End.UnixMicro() {
			t.Fatalf("row %d: timestamp %d outside the window", i, us)
		}
		for c := event.ColEventID; c < event.NumColumns; c++ {
			col, ok := pg.Rec.Column(c).(*array.String)
			if !ok || col.IsNull(i) {
				continue
			}
			v := col.Value(i)
			if !utf8.ValidString(v) {
				t.Fatalf("row %d column %d: invalid UTF-8 %q", i, c, v)
			}
			if (c == event.ColDetail || c == event.ColExtra) && !json.Valid([]byte(v)) {
				t.Fatalf("row %d column %d: not JSON: %s", i, c, v)
			}
			if c == event.ColExtra && v[0] != '{' {
				t.Fatalf("row %d: extra is not an object: %s", i, v)
			}
		}
	}
}

// FuzzFlatObject: skipValue answers the same with and without its flat
// object shortcut (skipFlatObject), on any bytes.
func FuzzFlatObject(f *testing.F) {
	f.Add([]byte(`{"vault":"finance","n":-1.5e3,"ok":true,"x":null}`))
	f.Add([]byte(`{"a":{"b":[1,"\u00e9"]}, "c" : "d"}`))
	f.Add([]byte("{\"a\":\"\xff\"}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 || body[0] != '{' {
			body = append([]byte{'{'}, body...)
		}
		d := NewDecoder(memory.DefaultAllocator, DecodeOptions{Org: "o"})
		e1, f1, p1, err1 := d.skipValue(body, 0)
		e2, f2, p2, err2 := d.scanValue(body, 0)
		if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) ||
			(err1 == nil && (e1 != e2 || f1 != f2 || p1 != p2)) {
			t.Fatalf("%q: shortcut (%d, %#x, %d, %v), general (%d, %#x, %d, %v)", body, e1, f1, p1, err1, e2, f2, p2, err2)
		}
	})
}

// FuzzTimeText: the Decoder's timeText, with its date and minute caches
// warm from the texts before, reads every text as parseTimeText does.
func FuzzTimeText(f *testing.F) {
	f.Add("2026-06-01T10:15:30.123Z", "2026-06-01T10:15:31.999Z", "2026-06-01T10:15:3x.123Z")
	f.Add("2026-06-01T10:15:30.123Z", "2026-06-01T10:15:30.12 Z", "2026-06-01 10:15:30.123+01:00")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		d := NewDecoder(memory.DefaultAllocator, DecodeOptions{Org: "o"})
		for _, s := range []string{a, b, c, a, c, b} {
			wantUS, wantOK := parseTimeText([]byte(s))
			if us, ok := d.timeText([]byte(s)); us != wantUS || ok != wantOK {
				t.Fatalf("timeText(%q) = %d, %v; parseTimeText: %d, %v", s, us, ok, wantUS, wantOK)
			}
		}
	})
}
