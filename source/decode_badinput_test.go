package source

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestDecodeBadInputMatrix: every hostile record, decoded between two good
// ones, is either kept as a row (with the value stated) or quarantined with
// the reason stated — never dropped, never a panic — and its neighbours
// survive. TestDecodeQuarantine covers the basic quarantine reasons; this
// matrix adds the type confusions and timestamp forms an unknown API may
// send.
func TestDecodeBadInputMatrix(t *testing.T) {
	const good1 = `{"id":"good-1","timestamp":"2026-06-01T10:00:00Z"}`
	const good2 = `{"id":"good-2","timestamp":"2026-06-01T10:59:59.999999Z"}`
	type want struct {
		reason string            // quarantine reason, or "" for a row
		cols   map[string]string // expected cells of the row ("<null>" for null)
	}
	rowWith := func(kv ...string) want {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return want{cols: m}
	}
	q := func(reason string) want { return want{reason: reason} }
	big := strings.Repeat("k", MaxFieldBytes+1)
	tests := []struct {
		name string
		elem string
		want want
	}{
		// Numbers, booleans and arrays where strings belong: kept as JSON text.
		{"numeric id", `{"id":123,` + tsOK + `}`, rowWith("event_id", "123")},
		{"numeric action", `{"id":"a",` + tsOK + `,"action":42}`, rowWith("action", "42")},
		{"float actor, bool severity, null title", `{"id":"a",` + tsOK + `,"actor":12.5,"severity":true,"title":null}`,
			rowWith("actor", "12.5", "severity", "true", "title", "<null>")},
		{"array source_ip", `{"id":"a",` + tsOK + `,"source_ip":["1.2.3.4"]}`, rowWith("source_ip", `["1.2.3.4"]`)},
		{"string detail is JSON text", `{"id":"a",` + tsOK + `,"detail":"plain"}`, rowWith("detail", `"plain"`)},
		{"empty id gets a stable hash id and is kept in extra", `{"id":"",` + tsOK + `}`, rowWith("extra", `{"id":""}`)},
		{"null id gets a stable hash id", `{"id":null,` + tsOK + `}`, rowWith()},
		{"duplicate key: first wins, second kept in extra", `{"id":"a",` + tsOK + `,"timestamp":"June"}`, rowWith("extra", `{"timestamp":"June"}`)},
		{"NUL in a string", `{"id":"a",` + tsOK + `,"title":"nul\u0000byte"}`, rowWith("title", "nul\x00byte")},
		{"lone surrogate escape becomes U+FFFD", `{"id":"a",` + tsOK + `,"title":"\ud800 lone"}`, rowWith("title", "\uFFFD lone")},
		{"999 levels of detail", `{"id":"a",` + tsOK + `,"detail":` + strings.Repeat(`{"a":`, 998) + `1` + strings.Repeat(`}`, 998) + `}`, rowWith()},

		// Timestamp forms.
		{"epoch seconds", `{"id":"a","timestamp":1780308930}`, rowWith("timestamp", "2026-06-01T10:15:30Z")},
		{"epoch millis", `{"id":"a","timestamp":1780308930123}`, rowWith("timestamp", "2026-06-01T10:15:30.123Z")},
		{"epoch seconds as a string", `{"id":"a","timestamp":"1780308930"}`, rowWith("timestamp", "2026-06-01T10:15:30Z")},
		{"offset is converted to UTC", `{"id":"a","timestamp":"2026-06-01T12:15:30+02:00"}`, rowWith("timestamp", "2026-06-01T10:15:30Z")},
		{"no zone is read as UTC", `{"id":"a","timestamp":"2026-06-01T10:15:30"}`, rowWith("timestamp", "2026-06-01T10:15:30Z")},
		{"number overflow", `{"id":"a","timestamp":1e400}`, q(ReasonBadTimestamp)},
		{"negative epoch", `{"id":"a","timestamp":-1}`, q(ReasonOutsideWindow)},
		{"February 30th", `{"id":"a","timestamp":"2026-02-30T10:00:00Z"}`, q(ReasonBadTimestamp)},
		{"hour 24", `{"id":"a","timestamp":"2026-06-01T24:00:00Z"}`, q(ReasonBadTimestamp)},
		{"leading space", `{"id":"a","timestamp":" 2026-06-01T10:15:30Z"}`, q(ReasonBadTimestamp)},
		{"bare date (midnight, outside this window)", `{"id":"a","timestamp":"2026-06-01"}`, q(ReasonOutsideWindow)},
		{"boolean timestamp", `{"id":"a","timestamp":true}`, q(ReasonBadTimestamp)},
		{"object timestamp", `{"id":"a","timestamp":{"s":1}}`, q(ReasonBadTimestamp)},
		{"empty timestamp", `{"id":"a","timestamp":""}`, q(ReasonBadTimestamp)},
		{"no timestamp key at all", `{"id":"a","when":"2026-06-01T10:15:30Z"}`, q(ReasonMissingTimestamp)},

		// Size and shape.
		{"huge key", `{"id":"a",` + tsOK + `,"` + big + `":1}`, q(ReasonTooLarge)},
		{"huge id", `{"id":"` + big + `",` + tsOK + `}`, q(ReasonTooLarge)},
		{"huge detail object", `{"id":"a",` + tsOK + `,"detail":{"x":"` + big + `"}}`, q(ReasonTooLarge)},
		{"non-UTF-8 id", "{\"id\":\"\xc0\xaf\"," + tsOK + "}", q(ReasonInvalidUTF8)},
		{"non-UTF-8 inside detail", "{\"id\":\"a\"," + tsOK + ",\"detail\":{\"k\":\"\xed\xa0\x80\"}}", q(ReasonInvalidUTF8)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg, rows := decodeOne(t, DecodeOptions{Org: "org_acme"}, good1, tt.elem, good2)
			if pg.Items != 3 {
				t.Fatalf("items = %d, want 3", pg.Items)
			}
			ids := map[string]row{}
			for _, r := range rows {
				ids[*r["event_id"].(*string)] = r
			}
			if _, ok := ids["good-1"]; !ok {
				t.Fatal("the good record before the bad one was lost")
			}
			if _, ok := ids["good-2"]; !ok {
				t.Fatal("the good record after the bad one was lost")
			}
			if tt.want.reason != "" {
				if len(rows) != 2 || len(pg.Quarantined) != 1 || pg.Quarantined[0].Reason != tt.want.reason {
					var reasons []string
					for _, q := range pg.Quarantined {
						reasons = append(reasons, q.Reason)
					}
					t.Fatalf("rows %d, quarantined %v; want the bad record quarantined as %q", len(rows), reasons, tt.want.reason)
				}
				if pg.Quarantined[0].Raw == "" {
					t.Fatal("quarantined without its raw JSON")
				}
				return
			}
			if len(rows) != 3 || len(pg.Quarantined) != 0 {
				t.Fatalf("rows %d, quarantined %d; want the record kept as a row", len(rows), len(pg.Quarantined))
			}
			r := rows[1]
			for col, v := range tt.want.cols {
				var got string
				switch c := r[col].(type) {
				case *string:
					got = "<null>"
					if c != nil {
						got = *c
					}
				case time.Time:
					got = c.Format(time.RFC3339Nano)
				}
				if got != v {
					t.Errorf("%s = %.80q, want %.80q", col, got, v)
				}
			}
		})
	}
}

// TestDecodeAbsurdNesting: a million levels of nesting cost no stack (the
// scanner is iterative) and quarantine the record.
func TestDecodeAbsurdNesting(t *testing.T) {
	const depth = 1_000_000
	elem := `{"id":"a",` + tsOK + `,"detail":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
	pg, rows := decodeOne(t, DecodeOptions{Org: "org_acme"}, elem, `{"id":"b",`+tsOK+`}`)
	if len(rows) != 1 || len(pg.Quarantined) != 1 || pg.Quarantined[0].Reason != ReasonTooDeep {
		t.Fatalf("rows %d quarantined %d", len(rows), len(pg.Quarantined))
	}
}

// TestDecodeUnclosedNestingIsMalformed: a body that never closes its
// nesting is a malformed page (retried), not a panic or a hang.
func TestDecodeUnclosedNestingIsMalformed(t *testing.T) {
	d := newTestDecoder(t, DecodeOptions{Org: "org_acme"})
	body := `{"data":[{"id":"a",` + tsOK + `,"detail":` + strings.Repeat("[", 100_000)
	pg, err := d.DecodePage([]byte(body), 1, testIngested)
	if pg.Rec != nil {
		pg.Rec.Release()
	}
	if err == nil {
		t.Fatal("an unterminated body decoded without error")
	}
	var me *MalformedError
	if !errors.As(err, &me) {
		t.Fatalf("want a MalformedError, got %T %v", err, err)
	}
}
