package source

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
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

// TestDecodeSortedDedup: in sorted mode (the default) a repeated event is
// dropped at a page boundary and inside a group of equal timestamps.
func TestDecodeSortedDedup(t *testing.T) {
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
	t.Run("tie group larger than a linear scan", func(t *testing.T) {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		var a, b [][]byte
		var want []string
		for i := range 3 * tieLinear {
			id := fmt.Sprintf("t%02d", i)
			want = append(want, id)
			a = append(a, sev(id, 5, 7))
			if i%3 == 0 {
				b = append(b, sev(id, 5, 7)) // repeats spread over the group
			}
		}
		p.mustPage(1, a...)
		pg := p.mustPage(2, append(b, sev("z", 5, 8))...)
		if pg.Duplicates != tieLinear || pg.Rows != 1 {
			t.Fatalf("duplicates %d rows %d, want %d 1", pg.Duplicates, pg.Rows, tieLinear)
		}
		p.once(append(want, "z")...)
	})
	t.Run("same id at another timestamp is another event", func(t *testing.T) {
		// Not a repeat of the API: kept, as FullDedup would NOT do. The
		// API never reuses an id for an event at another instant.
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		p.mustPage(1, sev("a", 1, 0), sev("b", 2, 0))
		pg := p.mustPage(2, sev("b", 2, 0), sev("c", 3, 0))
		if pg.Duplicates != 1 || p.rows != 3 {
			t.Fatalf("duplicates %d rows %d", pg.Duplicates, p.rows)
		}
	})
}

// TestDecodeSortedSetBounded: over a long non-decreasing window the
// decoder remembers at most the largest tie group, not the window — while
// FullDedup remembers every id. Both emit the same rows.
func TestDecodeSortedSetBounded(t *testing.T) {
	// 40 pages of 250 events; group sizes cycle 1..7 plus one group of 37.
	var pages [][][]byte
	var cur [][]byte
	sec, maxGroup, n := 0, 0, 0
	for len(pages) < 40 {
		size := 1 + n%7
		if n == 500 {
			size = 37
		}
		maxGroup = max(maxGroup, size)
		for k := range size {
			cur = append(cur, sev(fmt.Sprintf("e%d_%d", sec, k), sec/1000, sec%1000*1000))
			if len(cur) == 250 {
				pages = append(pages, cur)
				// the API's dup fault: the last event again on the next page
				cur = [][]byte{cur[len(cur)-1]}
			}
		}
		sec++
		n++
	}
	var rows [2]int
	for m, full := range []bool{false, true} {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme", FullDedup: full})
		peak := 0
		for i, evs := range pages {
			p.mustPage(i+1, evs...)
			peak = max(peak, p.d.dedupLen())
		}
		if p.dups != len(pages)-1 {
			t.Fatalf("full=%t: %d duplicates, want %d", full, p.dups, len(pages)-1)
		}
		for id, c := range p.seen {
			if c != 1 {
				t.Fatalf("full=%t: id %s emitted %d times", full, id, c)
			}
		}
		rows[m] = p.rows
		switch {
		case !full && peak > maxGroup:
			t.Fatalf("sorted mode remembered %d ids at once; the largest tie group is %d", peak, maxGroup)
		case full && peak != p.rows:
			t.Fatalf("FullDedup remembered %d ids, want every one of %d", peak, p.rows)
		}
	}
	if rows[0] != rows[1] || rows[0] != 40*249+1 {
		t.Fatalf("rows: sorted %d, FullDedup %d, want %d", rows[0], rows[1], 40*249+1)
	}
}

// TestDecodeUnsorted: time going back fails the page with ErrUnsorted and
// leaves no trace of it; FullDedup accepts the same pages.
func TestDecodeUnsorted(t *testing.T) {
	page1 := [][]byte{sev("a", 1, 0), sev("b", 2, 0), sev("c", 2, 0)}
	// new ids, a group change, then back in time
	bad := [][]byte{sev("c", 2, 0), sev("x", 2, 0), sev("y", 3, 0), sev("z", 1, 500)}
	good := [][]byte{sev("c", 2, 0), sev("x", 2, 0), sev("y", 3, 0), sev("w", 4, 0)}

	t.Run("sorted", func(t *testing.T) {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		p.mustPage(1, page1...)
		before := p.d.dedupLen()
		_, err := p.page(2, pageBody(bad, ""))
		if !errors.Is(err, ErrUnsorted) {
			t.Fatalf("error %v, want ErrUnsorted", err)
		}
		if errors.Is(err, ErrMalformed) || Retryable(err) {
			t.Fatalf("ErrUnsorted must be neither malformed nor retryable: %v", err)
		}
		for _, s := range []string{"page 2", "2026-06-01T10:00:01.000500Z", "2026-06-01T10:00:03.000000Z"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %s", err, s)
			}
		}
		if got := p.d.dedupLen(); got != before {
			t.Fatalf("after the failed page %d ids remembered, want %d", got, before)
		}
		// The failed page left no trace: c is still a repeat, x and y are new.
		pg := p.mustPage(2, good...)
		if pg.Duplicates != 1 || pg.Rows != 3 {
			t.Fatalf("page 2 after ErrUnsorted: rows %d duplicates %d, want 3 1", pg.Rows, pg.Duplicates)
		}
		p.once("a", "b", "c", "x", "y", "w")
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
	t.Run("FullDedup", func(t *testing.T) {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme", FullDedup: true})
		p.mustPage(1, page1...)
		pg := p.mustPage(2, append(bad, sev("a", 0, 1))...) // back in time, and a repeat far from its first copy
		if pg.Duplicates != 2 || pg.Rows != 3 {
			t.Fatalf("rows %d duplicates %d, want 3 2", pg.Rows, pg.Duplicates)
		}
		p.once("a", "b", "c", "x", "y", "z")
	})
}

// TestDecodeSortedRetryAfterMalformed: a page cut anywhere, then served
// whole, yields exactly what an uncut page would: the tie state (the
// latest timestamp and its ids) is rolled back with the failed page, both
// when the page only added to the current group and when it started new
// groups.
func TestDecodeSortedRetryAfterMalformed(t *testing.T) {
	page1 := [][]byte{sev("a", 1, 0), sev("b", 2, 0), sev("c", 2, 0)}
	// c repeats the boundary; d joins c's group; e, f start new groups.
	page2 := pageBody([][]byte{sev("c", 2, 0), sev("d", 2, 0), sev("b", 2, 0), sev("e", 3, 0), sev("f", 4, 0), sev("g", 4, 0)}, "")
	page3 := [][]byte{sev("g", 4, 0), sev("h", 4, 0), sev("i", 5, 0)}
	for cut := 1; cut < len(page2); cut += 3 {
		p := newPageDecoder(t, DecodeOptions{Org: "org_acme"})
		p.mustPage(1, page1...)
		before := p.d.dedupLen()
		if _, err := p.page(2, page2[:cut]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("cut at %d: %v, want ErrMalformed", cut, err)
		}
		// a second, different failure before the retry succeeds
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
