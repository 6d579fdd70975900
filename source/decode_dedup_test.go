package source

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/array"
)

// sev is a minimal event at second s (and µs us) of benchWindow.
func sev(id string, s, us int) []byte {
	ts := benchWindow.Start.Add(time.Duration(s)*time.Second + time.Duration(us)*time.Microsecond)
	return fmt.Appendf(nil, `{"id":%q,"timestamp":%q,"action":"X"}`, id, ts.Format(time.RFC3339Nano))
}

// pageDecoder decodes pages with one decoder and collects the emitted ids.
type pageDecoder struct {
	t    *testing.T
	d    *Decoder
	seen map[string]int
	rows int
	dups int
}

func newPageDecoder(t *testing.T, opts DecodeOptions) *pageDecoder {
	return &pageDecoder{t: t, d: newTestDecoder(t, opts), seen: map[string]int{}}
}

// page decodes body; a failure is returned, with no page.
func (p *pageDecoder) page(n int, body []byte) (Page, error) {
	p.t.Helper()
	pg, err := p.d.DecodePage(body, n, testIngested)
	if err != nil {
		if pg.Rec != nil || pg.Rows != 0 || pg.Items != 0 || pg.Quarantined != nil || pg.Duplicates != 0 {
			p.t.Fatalf("page %d failed but returned data: %+v", n, pg)
		}
		return pg, err
	}
	checkCounts(p.t, pg)
	for _, r := range readRows(p.t, pg.Rec) {
		p.seen[*r["event_id"].(*string)]++
	}
	if pg.Rec != nil {
		pg.Rec.Release()
	}
	p.rows += pg.Rows
	p.dups += pg.Duplicates
	return pg, nil
}

func (p *pageDecoder) mustPage(n int, evs ...[]byte) Page {
	p.t.Helper()
	pg, err := p.page(n, pageBody(evs, ""))
	if err != nil {
		p.t.Fatalf("page %d: %v", n, err)
	}
	return pg
}

// once checks that exactly the ids want were emitted, each once.
func (p *pageDecoder) once(want ...string) {
	p.t.Helper()
	for _, id := range want {
		if p.seen[id] != 1 {
			p.t.Errorf("id %s emitted %d times, want 1", id, p.seen[id])
		}
	}
	if len(p.seen) != len(want) {
		p.t.Errorf("%d distinct ids emitted, want %d: %v", len(p.seen), len(want), p.seen)
	}
}

// TestDecodeDedup: a repeated event_id is kept once per window wherever
// the repeat comes: at a page boundary, in a group of equal timestamps, on
// a later page with a later timestamp, or after time went back.
func TestDecodeDedupAnywhere(t *testing.T) {
	t.Run("repeat at a page boundary", func(t *testing.T) {
		for _, camel := range []bool{false, true} {
			evs := genEvents(30, 9, camel)
			p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
			p.mustPage(1, evs[:15]...)
			p2 := p.mustPage(2, evs[14:30]...) // evs[14] again, as the simulator's dup fault
			if p2.Duplicates != 1 || p.rows != 30 {
				t.Fatalf("camel=%t: page 2 duplicates %d, rows %d; want 1, 30", camel, p2.Duplicates, p.rows)
			}
			if len(p.seen) != 30 {
				t.Fatalf("camel=%t: %d distinct ids, want 30", camel, len(p.seen))
			}
		}
	})
	t.Run("tie group with repeats", func(t *testing.T) {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		p.mustPage(1, sev("a", 1, 0), sev("b", 2, 0), sev("c", 2, 0), sev("d", 2, 0))
		p2 := p.mustPage(2, sev("c", 2, 0), sev("d", 2, 0), sev("e", 2, 0), sev("b", 2, 0), sev("e", 2, 0), sev("f", 3, 0))
		p3 := p.mustPage(3, sev("f", 3, 0), sev("g", 3, 0), sev("h", 4, 0))
		if p2.Duplicates != 4 || p3.Duplicates != 1 {
			t.Fatalf("duplicates %d, %d; want 4, 1", p2.Duplicates, p3.Duplicates)
		}
		p.once("a", "b", "c", "d", "e", "f", "g", "h")
	})
	t.Run("same id later with a later timestamp", func(t *testing.T) {
		// A redelivered event: the first copy is kept, the later one
		// counted as a duplicate.
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		p.mustPage(1, sev("a", 1, 0), sev("b", 2, 0))
		pg := p.mustPage(2, sev("c", 3, 0), sev("a", 1200, 0), sev("d", 1300, 0))
		if pg.Duplicates != 1 || p.rows != 4 {
			t.Fatalf("duplicates %d rows %d, want 1 4", pg.Duplicates, p.rows)
		}
		p.once("a", "b", "c", "d")
	})
	t.Run("time going back", func(t *testing.T) {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		p.mustPage(1, sev("a", 1, 0), sev("b", 2, 0), sev("c", 2, 0))
		pg := p.mustPage(2, sev("c", 2, 0), sev("x", 2, 0), sev("y", 3, 0), sev("z", 1, 500), sev("a", 0, 1))
		if pg.Duplicates != 2 || pg.Rows != 3 {
			t.Fatalf("rows %d duplicates %d, want 3 2", pg.Rows, pg.Duplicates)
		}
		p.once("a", "b", "c", "x", "y", "z")
	})
	t.Run("quarantined and dropped records do not count", func(t *testing.T) {
		for _, drop := range []bool{false, true} {
			p := newPageDecoder(t, DecodeOptions{Org: "org_acme", DropOutside: drop})
			before := []byte(`{"id":"old","timestamp":"2026-06-01T09:00:00Z"}`) // outside the window
			p.mustPage(1, sev("a", 5, 0), before, []byte(`{"id":"nots"}`), []byte(`{"id":"bad","timestamp":"soon"}`),
				[]byte(`{"id":"other","timestamp":"2026-06-01T10:00:01Z","org_id":"org_evil"}`), sev("b", 6, 0))
			p.once("a", "b")
		}
	})
}

// TestDecodeRetryAfterMalformed: a page cut anywhere, then served whole,
// yields exactly what an uncut page would: the ids the failed page added
// are forgotten with it.
func TestDecodeRetryAfterMalformed(t *testing.T) {
	page1 := [][]byte{sev("a", 1, 0), sev("b", 2, 0), sev("c", 2, 0)}
	page2 := pageBody([][]byte{sev("c", 2, 0), sev("d", 2, 0), sev("b", 2, 0), sev("e", 3, 0), sev("f", 4, 0), sev("g", 4, 0)}, "")
	page3 := [][]byte{sev("g", 4, 0), sev("h", 4, 0), sev("i", 5, 0)}
	for cut := 1; cut < len(page2); cut += 3 {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		p.mustPage(1, page1...)
		before := p.d.dedupLen()
		if _, err := p.page(2, page2[:cut]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut at %d: %v, want ErrMalformed", cut, err)
		}
		if _, err := p.page(2, page2[:cut/2]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut at %d: %v, want ErrMalformed", cut/2, err)
		}
		if got := p.d.dedupLen(); got != before {
			t.Fatalf("cut at %d: %d ids remembered after the failures, want %d", cut, got, before)
		}
		pg, err := p.page(2, page2)
		if err != nil {
			t.Fatal(err)
		}
		if pg.Rows != 4 || pg.Duplicates != 2 {
			t.Fatalf("cut at %d, retry: rows %d duplicates %d, want 4 2", cut, pg.Rows, pg.Duplicates)
		}
		pg = p.mustPage(3, page3...)
		if pg.Rows != 2 || pg.Duplicates != 1 {
			t.Fatalf("cut at %d, page 3: rows %d duplicates %d, want 2 1", cut, pg.Rows, pg.Duplicates)
		}
		p.once("a", "b", "c", "d", "e", "f", "g", "h", "i")
		if t.Failed() {
			t.Fatalf("cut at %d", cut)
		}
	}
}

// TestDecodeKnown: ids the sink holds for the window are skipped and
// marked met (the held copy wins); a held id with other content is counted
// as changed; ids of an adjacent window are skipped as near duplicates; a
// failed page takes its marks back.
func TestDecodeKnown(t *testing.T) {
	// The held rows' digests come from decoding them, as a sink reading its
	// unit back would compute them from the same values.
	heldEvs := [][]byte{sev("a", 1, 0), sev("b", 2, 0), sev("c", 3, 0)}
	held := event.NewHeldSet(3)
	{
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		pg, err := p.d.DecodePage(pageBody(heldEvs, ""), 1, testIngested)
		if err != nil {
			t.Fatal(err)
		}
		var rd event.RowDigester
		if !rd.Reset(pg.Rec) {
			t.Fatal("RowDigester refused a decoded batch")
		}
		ids := pg.Rec.Column(event.ColEventID).(*array.String)
		for i := range int(pg.Rec.NumRows()) {
			held.Add(ids.Value(i), rd.Digest(i))
		}
		pg.Rec.Release()
	}
	near := event.NewIDSet()
	near.Add("n")
	p := newPageDecoder(t, DecodeOptions{Org: "org_acme", Known: event.Known{Held: held, Near: []event.IDLookup{near}}})
	changedB := []byte(`{"id":"b","timestamp":"2026-06-01T10:00:02Z","action":"OTHER"}`)
	page := pageBody([][]byte{sev("a", 1, 0), changedB, sev("n", 4, 0), sev("x", 5, 0)}, "")
	// A cut copy of the page first: its marks must not survive.
	if _, err := p.page(1, page[:len(page)-20]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("cut page: %v", err)
	}
	if held.Seen() != 0 || held.Changed() != 0 {
		t.Fatalf("after a failed page: seen %d changed %d, want 0 0", held.Seen(), held.Changed())
	}
	pg := p.mustPage(1, sev("a", 1, 0), changedB, sev("n", 4, 0), sev("x", 5, 0))
	if pg.Held != 2 || pg.NearDuplicates != 1 || pg.Rows != 1 {
		t.Fatalf("held %d near %d rows %d, want 2 1 1", pg.Held, pg.NearDuplicates, pg.Rows)
	}
	// "a" again (unchanged) on a later page: still held, marks unchanged.
	pg = p.mustPage(2, sev("a", 1, 0), sev("y", 6, 0))
	if pg.Held != 1 || pg.Rows != 1 {
		t.Fatalf("page 2: held %d rows %d, want 1 1", pg.Held, pg.Rows)
	}
	p.once("x", "y")
	if held.Seen() != 2 || held.Missing() != 1 || held.Changed() != 1 {
		t.Fatalf("seen %d missing %d changed %d, want 2 1 1", held.Seen(), held.Missing(), held.Changed())
	}
	if !p.d.IDs().Has("x") || p.d.IDs().Has("a") || p.d.IDs().Len() != 2 {
		t.Fatalf("the window's emitted ids: %d", p.d.IDs().Len())
	}
}

// TestDecodeMargin: records within Margin outside the window are the
// adjacent windows' (skipped, counted); further out they are quarantined.
func TestDecodeMargin(t *testing.T) {
	p := newPageDecoder(t, DecodeOptions{Org: "org_acme", Margin: time.Second})
	start := benchWindow.Start
	at := func(id string, t time.Time) []byte {
		return fmt.Appendf(nil, `{"id":%q,"timestamp":%q}`, id, t.Format(time.RFC3339Nano))
	}
	pg := p.mustPage(1,
		at("before", start.Add(-time.Second)),         // margin: skipped
		at("far", start.Add(-2*time.Second)),          // quarantined
		at("first", start),                            // in
		at("end", benchWindow.End),                    // margin (an API with (from,to] bounds): skipped
		at("after", benchWindow.End.Add(time.Second)), // margin: skipped
	)
	if pg.Rows != 1 || pg.Outside != 3 || len(pg.Quarantined) != 1 {
		t.Fatalf("rows %d outside %d quarantined %d, want 1 3 1", pg.Rows, pg.Outside, len(pg.Quarantined))
	}
}

// TestDecodeForeignOrg: the first mismatched org of a page is reported.
func TestDecodeForeignOrg(t *testing.T) {
	p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
	pg := p.mustPage(1, []byte(`{"id":"x","timestamp":"2026-06-01T10:00:01Z","org_id":"org_evil"}`),
		[]byte(`{"id":"y","timestamp":"2026-06-01T10:00:02Z","org_id":"org_other"}`))
	if pg.ForeignOrg != "org_evil" || len(pg.Quarantined) != 2 {
		t.Fatalf("foreign %q quarantined %d", pg.ForeignOrg, len(pg.Quarantined))
	}
}
