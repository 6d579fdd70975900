package vaultsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawWalk follows next_cursor over [from,to) like walk, but also returns
// every page body, and treats a page without the next_cursor key as final.
func rawWalk(t testing.TB, base, token string, from, to time.Time, limit int) (evs []map[string]any, bodies [][]byte) {
	t.Helper()
	cur := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("walk does not end")
		}
		params := []string{"from", ts(from), "to", ts(to), "limit", strconv.Itoa(limit)}
		if cur != "" {
			params = append(params, "cursor", cur)
		}
		r := get(t, eventsURL(base, params...), token)
		p := decodePage(t, r)
		evs = append(evs, p.Data...)
		bodies = append(bodies, r.body)
		if p.NextCursor == nil {
			return evs, bodies
		}
		cur = *p.NextCursor
	}
}

// idTime decodes the millisecond time an id was generated at (its first 10
// Crockford chars).
func idTime(t testing.TB, id string) time.Time {
	t.Helper()
	var ms int64
	for _, c := range id[len(idPrefix) : len(idPrefix)+10] {
		d := strings.IndexRune(crockford, c)
		if d < 0 {
			t.Fatalf("bad id %q", id)
		}
		ms = ms<<5 | int64(d)
	}
	return time.UnixMilli(ms).UTC()
}

func startWith(t *testing.T, mod func(*Config)) *Running {
	t.Helper()
	cfg := baseConfig()
	mod(&cfg)
	return Start(t, cfg)
}

func TestOmitFinalCursor(t *testing.T) {
	t.Parallel()
	from, to := t0.Add(-3*time.Hour), t0
	for _, p := range []Profile{ProfileDefault, ProfileCamel, ProfileDates} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			sim := startWith(t, func(c *Config) { c.Profile, c.OmitFinalCursor = p, true })
			tok := sim.Creds()[0].Token
			f, tt := from, to
			if p == ProfileDates {
				f, tt = time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC), time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
			}
			var bodies [][]byte
			n := 0
			cur := ""
			for {
				params := []string{"from", ts(f), "to", ts(tt), "limit", "50"}
				if p == ProfileDates {
					params = []string{"from", f.Format(time.DateOnly), "to", tt.Format(time.DateOnly), "limit", "500"}
				}
				if cur != "" {
					params = append(params, "cursor", cur)
				}
				r := get(t, eventsURL(sim.URL, params...), tok)
				pg := decodePage(t, r)
				bodies = append(bodies, r.body)
				n += len(pg.Data)
				if pg.NextCursor == nil {
					break
				}
				cur = *pg.NextCursor
			}
			if len(bodies) < 3 {
				t.Fatalf("only %d pages", len(bodies))
			}
			for i, b := range bodies {
				has := bytes.Contains(b, []byte(`"next_cursor"`))
				if last := i == len(bodies)-1; has == last {
					t.Fatalf("page %d of %d: next_cursor key present = %v: %s", i+1, len(bodies), has, b[max(0, len(b)-80):])
				}
			}
			last := bodies[len(bodies)-1]
			if !bytes.HasSuffix(last, []byte("]}")) || !json.Valid(last) {
				t.Fatalf("last page ends %q", last[max(0, len(last)-40):])
			}
			wf, wt := f, tt
			if p == ProfileDates {
				wt = wt.Add(24 * time.Hour)
			}
			if want, _ := sim.Truth("org_1", wf, wt); n != want {
				t.Fatalf("walk %d events, truth %d", n, want)
			}
		})
	}
	t.Run("off by default", func(t *testing.T) {
		t.Parallel()
		sim := Start(t, baseConfig())
		_, bodies := rawWalk(t, sim.URL, sim.Creds()[0].Token, from, to, 1000)
		if last := bodies[len(bodies)-1]; !bytes.HasSuffix(last, []byte(`,"next_cursor":null}`)) {
			t.Fatalf("last page ends %q", last[max(0, len(last)-40):])
		}
	})
}

type pageEnvelope struct {
	Events     []map[string]any `json:"events"`
	Page       *int             `json:"page"`
	TotalPages *int             `json:"total_pages"`
	HasMore    *bool            `json:"has_more"`
}

func getPage(t testing.TB, sim *Running, token string, from, to time.Time, page, perPage int) (pageEnvelope, []byte) {
	t.Helper()
	r := get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to), "page", strconv.Itoa(page), "per_page", strconv.Itoa(perPage)), token)
	var p pageEnvelope
	if r.err != nil || r.status != 200 || json.Unmarshal(r.body, &p) != nil {
		t.Fatalf("page %d: %d %v %.200s", page, r.status, r.err, r.body)
	}
	return p, r.body
}

func TestPageCapNoTotalsHasMore(t *testing.T) {
	t.Parallel()
	sim := startWith(t, func(c *Config) {
		c.Profile, c.PageCap, c.NoTotals, c.HasMore = ProfilePage, 120, true, true
	})
	tok := sim.Creds()[0].Token
	from, to := t0.Add(-12*time.Hour), t0
	want := sim.EventIDs("org_1", from, to)
	if len(want) < 1000 {
		t.Fatalf("window too small: %d events", len(want))
	}
	var got []string
	for n := 1; ; n++ {
		p, body := getPage(t, sim, tok, from, to, n, 1000)
		if p.TotalPages != nil || bytes.Contains(body, []byte("total_pages")) {
			t.Fatalf("page %d carries total_pages", n)
		}
		if p.Page == nil || *p.Page != n || p.HasMore == nil {
			t.Fatalf("page %d: envelope %s", n, body[bytes.LastIndexByte(body, ']'):])
		}
		// page N starts at offset (N-1)*PageCap
		if len(p.Events) > 0 && p.Events[0]["id"] != want[(n-1)*120] {
			t.Fatalf("page %d starts at %v, want %s", n, p.Events[0]["id"], want[(n-1)*120])
		}
		got = append(got, ids(p.Events)...)
		if more := len(got) < len(want); *p.HasMore != more {
			t.Fatalf("page %d: has_more %v after %d of %d events", n, *p.HasMore, len(got), len(want))
		}
		if !*p.HasMore {
			break
		}
		if len(p.Events) != 120 {
			t.Fatalf("page %d has %d events, want the cap 120", n, len(p.Events))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("page walk %d ids, truth %d", len(got), len(want))
	}
	// smaller per_page is not raised; past the end is empty and final
	if p, _ := getPage(t, sim, tok, from, to, 2, 50); len(p.Events) != 50 || p.Events[0]["id"] != want[50] || !*p.HasMore {
		t.Fatalf("per_page=50 page 2: %d events, has_more %v", len(p.Events), *p.HasMore)
	}
	if p, body := getPage(t, sim, tok, from, to, 1000, 1000); len(p.Events) != 0 || *p.HasMore {
		t.Fatalf("past the end: %s", body)
	}
	if r := get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to), "per_page", "1001"), tok); r.status != 400 {
		t.Fatalf("per_page=1001: status %d", r.status)
	}

	t.Run("totals kept, has_more with an exact fit", func(t *testing.T) {
		t.Parallel()
		sim := startWith(t, func(c *Config) { c.Profile, c.HasMore = ProfilePage, true })
		all := sim.Events("org_1", from, to)
		k := 300 // a window of exactly 300 events: page 3 of 100 is full and last
		for all[k].Timestamp.Equal(all[k-1].Timestamp) {
			k += 100
		}
		p, body := getPage(t, sim, sim.Creds()[0].Token, from, all[k].Timestamp, k/100, 100)
		if len(p.Events) != 100 || *p.HasMore {
			t.Fatalf("last full page: %d events, %s", len(p.Events), body[bytes.LastIndexByte(body, ']'):])
		}
		n := strconv.Itoa(k / 100)
		if !bytes.HasSuffix(body, []byte(`],"page":`+n+`,"total_pages":`+n+`,"has_more":false}`)) {
			t.Fatalf("envelope %s", body[bytes.LastIndexByte(body, ']'):])
		}
		if p, _ := getPage(t, sim, sim.Creds()[0].Token, from, all[k].Timestamp, k/100-1, 100); !*p.HasMore {
			t.Fatal("has_more false before the last page")
		}
	})
}

func TestLeftOpenBounds(t *testing.T) {
	t.Parallel()
	sim := startWith(t, func(c *Config) { c.LeftOpenBounds = true })
	tok := sim.Creds()[0].Token
	all := sim.Events("org_1", h0, t0)
	m := len(all) / 2
	for all[m].Timestamp.Equal(all[m-1].Timestamp) || all[m].Timestamp.Equal(all[m+1].Timestamp) {
		m++ // want an event alone in its millisecond
	}
	e := all[m]
	p := decodePage(t, get(t, eventsURL(sim.URL, "from", ts(e.Timestamp), "to", ts(e.Timestamp.Add(time.Hour)), "limit", "1"), tok))
	if len(p.Data) != 1 || p.Data[0]["id"] != all[m+1].ID {
		t.Fatalf("first event after from = %v, want %s (the one at from excluded)", p.Data, all[m+1].ID)
	}
	evs := walk(t, sim.URL, tok, e.Timestamp.Add(-time.Minute), e.Timestamp, 7)
	if len(evs) == 0 || evs[len(evs)-1]["id"] != e.ID {
		t.Fatalf("the event exactly at to is not the last one served")
	}
	// a cursor walk of (from, to] is the truth of [from+1ms, to+1ms)
	from, to := h0.Add(3*time.Hour+250*time.Millisecond), t0.Add(-20*time.Hour)
	got := ids(walk(t, sim.URL, tok, from, to, 97))
	want := sim.EventIDs("org_1", from.Add(time.Millisecond), to.Add(time.Millisecond))
	if len(want) < 1000 || !slices.Equal(got, want) {
		t.Fatalf("walk of (from,to] %d ids, truth %d", len(got), len(want))
	}

	t.Run("page profile", func(t *testing.T) {
		t.Parallel()
		sim := startWith(t, func(c *Config) { c.LeftOpenBounds, c.Profile = true, ProfilePage })
		p, _ := getPage(t, sim, sim.Creds()[0].Token, e.Timestamp, e.Timestamp.Add(time.Hour), 1, 1)
		if len(p.Events) != 1 || p.Events[0]["id"] != all[m+1].ID {
			t.Fatalf("first event after from = %v, want %s", ids(p.Events), all[m+1].ID)
		}
		p, _ = getPage(t, sim, sim.Creds()[0].Token, e.Timestamp.Add(-time.Millisecond), e.Timestamp, 1, 10)
		if ids(p.Events)[len(p.Events)-1] != e.ID || *p.TotalPages != 1 {
			t.Fatalf("(to-1ms, to] = %v, want it to end with %s", ids(p.Events), e.ID)
		}
	})
}

func TestSecondPrecision(t *testing.T) {
	t.Parallel()
	sim := startWith(t, func(c *Config) { c.SecondPrecision = true })
	plain := Start(t, baseConfig())
	tok := sim.Creds()[0].Token
	// Bounds at the generated times of two events with a fraction of a
	// second: the one at from is stored before from (out), the one at to
	// is stored before to (in), unlike in the plain truth.
	gen := plain.Events("org_1", t0.Add(-12*time.Hour), t0)
	pick := func(i int) Event {
		for ; gen[i].Timestamp.Nanosecond() == 0; i++ {
		}
		return gen[i]
	}
	e1, e2 := pick(10), pick(len(gen)-200)
	from, to := e1.Timestamp, e2.Timestamp
	evs := walk(t, sim.URL, tok, from, to, 113)
	want := sim.EventIDs("org_1", from, to)
	if len(want) < 1000 || !slices.Equal(ids(evs), want) {
		t.Fatalf("walk %d ids, truth %d", len(evs), len(want))
	}
	pw := plain.EventIDs("org_1", from, to)
	if slices.Contains(want, e1.ID) || !slices.Contains(want, e2.ID) || !slices.Contains(pw, e1.ID) || slices.Contains(pw, e2.ID) {
		t.Fatal("window membership is not by the truncated time")
	}
	sameSecond := false
	for i, e := range evs {
		s := e["timestamp"].(string)
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil || len(s) != len("2026-06-01T10:15:30Z") {
			t.Fatalf("timestamp %q (err %v)", s, err)
		}
		id := e["id"].(string)
		if gen := idTime(t, id); !tm.Equal(gen.Truncate(time.Second)) {
			t.Fatalf("event %s generated at %v is stored at %v", id, gen, tm)
		}
		if tm.Before(from) || !tm.Before(to) {
			t.Fatalf("event %d at %v outside [%v,%v)", i, tm, from, to)
		}
		if i > 0 {
			ps, pid := evs[i-1]["timestamp"].(string), evs[i-1]["id"].(string)
			if ps > s || ps == s && pid >= id {
				t.Fatalf("not sorted at %d", i)
			}
			sameSecond = sameSecond || ps == s
		}
	}
	if !sameSecond {
		t.Fatal("no two events share a second: the sort within a second is untested")
	}
	// Events and AppendEvent give the served bytes
	r := get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to), "limit", "3"), tok)
	b := []byte(`{"data":[`)
	for i, e := range sim.Events("org_1", from, to)[:3] {
		if e.Timestamp.Nanosecond() != 0 {
			t.Fatalf("Events timestamp %v is not whole seconds", e.Timestamp)
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = sim.AppendEvent(b, e)
	}
	if !bytes.HasPrefix(r.body, append(b, ']')) {
		t.Fatalf("Events/AppendEvent differ from the served page:\n%s\n%s", b, r.body)
	}
	t.Run("camel", func(t *testing.T) {
		t.Parallel()
		sim := startWith(t, func(c *Config) { c.SecondPrecision, c.Profile = true, ProfileCamel })
		p := decodePage(t, get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to), "limit", "5"), sim.Creds()[0].Token))
		if len(p.Data) != 5 || len(p.Data[0]["occurredAt"].(string)) != len("2026-06-01T10:15:30Z") {
			t.Fatalf("camel page %v", p.Data)
		}
	})
}

func baseConfigRate(rate float64) Config {
	c := baseConfig()
	c.Rate = rate
	return c
}

func TestVisibleShare(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	c := sim.Creds()
	from, to := t0.Add(-6*time.Hour), t0
	all := sim.EventIDs("org_1", from, to)
	sim.SetVisibleShare("org_1", 0.67)
	vis := sim.VisibleEventIDs("org_1", from, to)
	if f := float64(len(vis)) / float64(len(all)); f < 0.6 || f > 0.74 {
		t.Fatalf("share 0.67 shows %d of %d events", len(vis), len(all))
	}
	for _, tok := range []string{c[0].Token, c[0].JWT} {
		if got := ids(walk(t, sim.URL, tok, from, to, 101)); !slices.Equal(got, vis) {
			t.Fatalf("walk under share %d ids, visible %d", len(got), len(vis))
		}
	}
	// the final truth is untouched; other orgs are untouched
	if !slices.Equal(sim.EventIDs("org_1", from, to), all) {
		t.Fatal("EventIDs follows the share")
	}
	if n, _ := sim.Truth("org_1", from, to); n != len(all) {
		t.Fatal("Truth follows the share")
	}
	if got := ids(walk(t, sim.URL, c[1].Token, from, to, 1000)); !slices.Equal(got, sim.EventIDs("org_2", from, to)) {
		t.Fatal("org_2 affected by org_1's share")
	}
	// a lower share hides a superset; the same share hides the same events
	sim.SetVisibleShare("org_1", 0.3)
	low := sim.VisibleEventIDs("org_1", from, to)
	for _, id := range low {
		if !slices.Contains(vis, id) {
			t.Fatalf("%s hidden at 0.67 but shown at 0.3", id)
		}
	}
	sim.SetVisibleShare("org_1", 0.67)
	if !slices.Equal(sim.VisibleEventIDs("org_1", from, to), vis) {
		t.Fatal("the same share hides other events")
	}
	sim.SetVisibleShare("org_1", 0)
	if p := decodePage(t, get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to)), c[0].Token)); len(p.Data) != 0 {
		t.Fatalf("share 0 served %d events", len(p.Data))
	}
	sim.SetVisibleShare("org_1", 1)
	if got := ids(walk(t, sim.URL, c[0].Token, from, to, 1000)); !slices.Equal(got, all) {
		t.Fatal("share 1 does not show everything again")
	}
	// the same seed hides the same events on another server
	other := Start(t, baseConfig())
	other.SetVisibleShare("org_1", 0.67)
	if !slices.Equal(other.VisibleEventIDs("org_1", from, to), vis) {
		t.Fatal("the hidden events are not a function of the seed")
	}

	t.Run("page profile totals", func(t *testing.T) {
		t.Parallel()
		sim := startWith(t, func(c *Config) { c.Profile = ProfilePage })
		sim.SetVisibleShare("org_1", 0.5)
		vis := sim.VisibleEventIDs("org_1", from, to)
		var got []string
		for n := 1; ; n++ {
			p, _ := getPage(t, sim, sim.Creds()[0].Token, from, to, n, 200)
			if want := (len(vis) + 199) / 200; *p.TotalPages != want {
				t.Fatalf("total_pages %d, want %d for %d visible events", *p.TotalPages, want, len(vis))
			}
			got = append(got, ids(p.Events)...)
			if n >= *p.TotalPages {
				break
			}
		}
		if !slices.Equal(got, vis) {
			t.Fatalf("page walk %d ids, visible %d", len(got), len(vis))
		}
	})
}

func TestRetention(t *testing.T) {
	t.Parallel()
	for _, p := range []Profile{ProfileDefault, ProfilePage} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			sim := startWith(t, func(c *Config) { c.Profile = p })
			tok := sim.Creds()[0].Token
			from, to := t0.Add(-6*time.Hour), t0
			cut := t0.Add(-150*time.Minute + 333*time.Millisecond)
			sim.SetRetention("org_1", cut)
			vis := sim.VisibleEventIDs("org_1", from, to)
			if want := sim.EventIDs("org_1", cut, to); !slices.Equal(vis, want) {
				t.Fatalf("VisibleEventIDs under retention %d, want the truth from the cut-off %d", len(vis), len(want))
			}
			var got []string
			if p == ProfilePage {
				for n := 1; ; n++ {
					pg, _ := getPage(t, sim, tok, from, to, n, 300)
					got = append(got, ids(pg.Events)...)
					if n >= *pg.TotalPages {
						break
					}
				}
			} else {
				got = ids(walk(t, sim.URL, tok, from, to, 300))
			}
			if len(vis) == 0 || !slices.Equal(got, vis) {
				t.Fatalf("walk under retention %d ids, want %d", len(got), len(vis))
			}
			if n, _ := sim.Truth("org_1", from, to); n <= len(vis) {
				t.Fatal("Truth follows the retention")
			}
			sim.SetRetention("org_1", time.Time{})
			if got := sim.VisibleEventIDs("org_1", from, to); !slices.Equal(got, sim.EventIDs("org_1", from, to)) {
				t.Fatal("zero time does not remove the cut-off")
			}
		})
	}
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	for _, p := range []Profile{ProfileDefault, ProfilePage, ProfileLink} {
		t.Run(string(p), func(t *testing.T) {
			t.Parallel()
			sim := startWith(t, func(c *Config) { c.Profile = p })
			c := sim.Creds()
			u := eventsURL(sim.URL, "from", ts(t0.Add(-2*time.Hour)), "to", ts(t0), "limit", "10", "per_page", "10")
			before := get(t, u, c[0].Token)
			assertStatus(t, before, 200)
			sim.SetFailClosed(c[0].Token, true)
			r := get(t, u, c[0].Token)
			assertStatus(t, r, 200)
			want := map[Profile]string{
				ProfileDefault: `{"data":[],"next_cursor":null}`,
				ProfilePage:    `{"events":[],"page":1,"total_pages":0}`,
				ProfileLink:    `[]`,
			}[p]
			if string(r.body) != want || r.header.Get("Link") != "" {
				t.Fatalf("fail-closed page %s (Link %q), want %s", r.body, r.header.Get("Link"), want)
			}
			if p == ProfileDefault {
				// a walk in progress ends on an empty page instead of failing
				var pg page
				_ = json.Unmarshal(before.body, &pg)
				r := get(t, u+"&cursor="+*pg.NextCursor, c[0].Token)
				if r.status != 200 || string(r.body) != want {
					t.Fatalf("fail-closed page with a cursor: %d %s", r.status, r.body)
				}
			}
			// the org's other credentials and other orgs are unaffected
			assertStatus(t, get(t, u, c[0].JWT), 200)
			if r := get(t, u, c[0].JWT); bytes.Equal(r.body, []byte(want)) {
				t.Fatal("the JWT lost its org context too")
			}
			if r := get(t, u, c[1].Token); bytes.Equal(r.body, []byte(want)) {
				t.Fatal("org_2 lost its org context")
			}
			sim.SetFailClosed(c[0].Token, false)
			if r := get(t, u, c[0].Token); !bytes.Equal(r.body, before.body) {
				t.Fatal("the token did not get its org back")
			}
		})
	}
}

// Controls flip while clients read: no race, and every page is one of the
// two states.
func TestControlsConcurrent(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	tok := sim.Creds()[0].Token
	from, to := t0.Add(-2*time.Hour), t0
	u := eventsURL(sim.URL, "from", ts(from), "to", ts(to), "limit", "1000")
	full := get(t, u, tok).body
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r := get(t, u, tok)
				if r.status != 200 {
					t.Errorf("status %d", r.status)
					return
				}
			}
		})
	}
	for i := range 50 {
		sim.SetVisibleShare("org_1", float64(i%3)/2)
		sim.SetRetention("org_1", from.Add(time.Duration(i)*time.Minute))
		sim.SetFailClosed(tok, i%2 == 0)
		sim.VisibleEventIDs("org_1", from, to)
	}
	close(stop)
	wg.Wait()
	sim.SetVisibleShare("org_1", 1)
	sim.SetRetention("org_1", time.Time{})
	sim.SetFailClosed(tok, false)
	if sim.ctl.Load() != nil {
		t.Fatal("controls back at their defaults are not dropped")
	}
	if !bytes.Equal(get(t, u, tok).body, full) {
		t.Fatal("controls reset, page differs")
	}
}

func TestClockOffset(t *testing.T) {
	t.Parallel()
	sim := startWith(t, func(c *Config) { c.Live, c.ClockOffset = true, -6*time.Hour })
	tok := sim.Creds()[0].Token
	apiNow := t0.Add(-6 * time.Hour)
	// the last hour by the client's clock is in the API's future: nothing
	if p := decodePage(t, get(t, eventsURL(sim.URL, "from", ts(t0.Add(-time.Hour)), "to", ts(t0)), tok)); len(p.Data) != 0 {
		t.Fatalf("%d events newer than the API's clock", len(p.Data))
	}
	evs := walk(t, sim.URL, tok, t0.Add(-7*time.Hour), t0, 1000)
	n, _ := sim.Truth("org_1", t0.Add(-7*time.Hour), apiNow)
	if len(evs) == 0 || len(evs) != n {
		t.Fatalf("walk %d events, truth up to the API's now %d", len(evs), n)
	}
	if last, _ := time.Parse(time.RFC3339Nano, evs[len(evs)-1]["timestamp"].(string)); !last.Before(apiNow) {
		t.Fatalf("event at %v, API clock %v", last, apiNow)
	}
	// an omitted `to` is the API's now
	r := get(t, eventsURL(sim.URL, "from", ts(apiNow.Add(-10*time.Minute)), "limit", "1000"), tok)
	if p := decodePage(t, r); len(p.Data) == 0 || len(p.Data) != len(walk(t, sim.URL, tok, apiNow.Add(-10*time.Minute), apiNow, 1000)) {
		t.Fatalf("to omitted: %d events", len(p.Data))
	}
	// every response carries the API's clock in Date
	base := strings.TrimSuffix(sim.URL, "/api")
	failing := startFaults(t, "500=1", nil) // no offset: Date is Now itself
	for _, rr := range []resp{
		r,
		get(t, eventsURL(sim.URL, "from", ts(t0)), ""), // 401
		get(t, eventsURL(sim.URL, "from", "x"), tok),   // 400
		get(t, base+"/health", ""),
		get(t, base+"/nope", ""), // 404
		get(t, eventsURL(failing.URL, "from", ts(t0)), failing.Creds()[0].Token),
	} {
		d, err := http.ParseTime(rr.header.Get("Date"))
		wantDate := apiNow
		if rr.status == 500 {
			wantDate = t0
		}
		if err != nil || !d.Equal(wantDate) || !strings.HasSuffix(rr.header.Get("Date"), " GMT") {
			t.Fatalf("status %d: Date %q, want %v", rr.status, rr.header.Get("Date"), wantDate)
		}
	}
	// JWT expiry is judged by the API's clock
	jwt := sim.MintJWT("org_1", "", t0.Add(-3*time.Hour))
	assertStatus(t, get(t, eventsURL(sim.URL, "from", ts(apiNow.Add(-time.Hour))), jwt), 200)
	jwt = sim.MintJWT("org_1", "", apiNow)
	assertStatus(t, get(t, eventsURL(sim.URL, "from", ts(apiNow.Add(-time.Hour))), jwt), 401)
	// the issued JWTs live JWTTTL from the API's now
	if exp := jwtExp(t, sim.Creds()[0].JWT); !exp.Equal(apiNow.Add(12 * time.Hour)) {
		t.Fatalf("issued JWT expires %v", exp)
	}

	t.Run("late visibility", func(t *testing.T) {
		t.Parallel()
		sim := startFaults(t, "late=0.3", func(c *Config) { c.ClockOffset = -time.Hour; c.LateDelay = time.Hour })
		from, to := t0.Add(-3*time.Hour), t0.Add(-time.Hour)
		var visible []string
		all := sim.Events("org_1", from, to)
		for _, e := range all {
			if !e.Late || !e.Timestamp.Add(time.Hour).After(t0.Add(-time.Hour)) {
				visible = append(visible, e.ID)
			}
		}
		if len(visible) == len(all) {
			t.Fatal("no late event hidden by the API's clock")
		}
		if got := ids(walk(t, sim.URL, sim.Creds()[0].Token, from, to, 1000)); !slices.Equal(got, visible) {
			t.Fatalf("late events judged by another clock: %d ids, want %d", len(got), len(visible))
		}
	})
}

func jwtExp(t testing.TB, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	b, err := b64.DecodeString(parts[1])
	var c struct{ Exp int64 }
	if err != nil || json.Unmarshal(b, &c) != nil {
		t.Fatalf("jwt %q", tok)
	}
	return time.Unix(c.Exp, 0).UTC()
}

func TestRedeliver(t *testing.T) {
	t.Parallel()
	mod := func(c *Config) {
		c.Faults.Redeliver = 0.05
		c.Rate = 1000
	}
	sim := startWith(t, mod)
	tok := sim.Creds()[0].Token
	from, to := t0.Add(-5*time.Hour+7*time.Minute), t0.Add(-time.Hour)
	evs := walk(t, sim.URL, tok, from, to, 97)
	truth := sim.EventIDs("org_1", from, to)
	plainCfg := baseConfig()
	mod(&plainCfg)
	plainCfg.Faults.Redeliver = 0
	plain := Start(t, plainCfg)
	if !slices.Equal(truth, plain.EventIDs("org_1", from, to)) {
		t.Fatal("the truth changed with redeliver")
	}
	byID := map[string][]map[string]any{}
	copies, sameHour, nextHour, fromBefore := 0, 0, 0, 0
	for i, e := range evs {
		id := e["id"].(string)
		byID[id] = append(byID[id], e)
		tm, _ := time.Parse(time.RFC3339Nano, e["timestamp"].(string))
		if tm.Before(from) || !tm.Before(to) {
			t.Fatalf("event at %v outside the window", tm)
		}
		if i > 0 {
			ps, pid, s := evs[i-1]["timestamp"].(string), evs[i-1]["id"].(string), e["timestamp"].(string)
			if ps > s || ps == s && pid >= id {
				t.Fatalf("not sorted by (time, id) at %d", i)
			}
		}
		orig := idTime(t, id)
		if tm.Equal(orig) {
			continue
		}
		copies++
		if d := tm.Sub(orig); d != 20*time.Minute {
			t.Fatalf("copy of %s at %v, %v after its original", id, tm, d)
		}
		if orig.Truncate(time.Hour).Equal(tm.Truncate(time.Hour)) {
			sameHour++
		} else {
			nextHour++
		}
		if orig.Before(from) {
			fromBefore++
		}
	}
	if copies == 0 || sameHour == 0 || nextHour == 0 || fromBefore == 0 {
		t.Fatalf("copies %d (same hour %d, next hour %d, original before the window %d)", copies, sameHour, nextHour, fromBefore)
	}
	if f := float64(copies) / float64(len(truth)); f < 0.03 || f > 0.07 {
		t.Fatalf("%d copies of %d events at rate 0.05", copies, len(truth))
	}
	if got := sim.Requests().Faults["redeliver"]; got != int64(copies) {
		t.Fatalf("Faults[redeliver] = %d, served %d copies", got, copies)
	}
	twice := 0
	for id, es := range byID {
		if len(es) == 1 {
			continue
		}
		twice++
		if len(es) != 2 {
			t.Fatalf("%s served %d times", id, len(es))
		}
		a, b := es[0], es[1]
		delete(a, "timestamp")
		delete(b, "timestamp")
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if !bytes.Equal(ja, jb) {
			t.Fatalf("copy differs from its original:\n%s\n%s", ja, jb)
		}
	}
	distinct := make([]string, 0, len(byID))
	for id := range byID {
		if orig := idTime(t, id); !orig.Before(from) {
			distinct = append(distinct, id)
		}
	}
	slices.Sort(distinct)
	if twice == 0 || !slices.Equal(distinct, truth) {
		t.Fatalf("%d ids served twice; distinct ids of the window %d, truth %d", twice, len(distinct), len(truth))
	}

	// adjacent windows: an event of the first is served again in the second
	w1 := ids(walk(t, sim.URL, tok, t0.Add(-3*time.Hour), t0.Add(-2*time.Hour), 1000))
	w2 := ids(walk(t, sim.URL, tok, t0.Add(-2*time.Hour), t0.Add(-time.Hour), 1000))
	across := 0
	for _, id := range w2 {
		if slices.Contains(w1, id) {
			across++
		}
	}
	if across == 0 {
		t.Fatal("no event of a window is redelivered into the next")
	}

	t.Run("page and link profiles serve the same stream", func(t *testing.T) {
		t.Parallel()
		for _, p := range []Profile{ProfilePage, ProfileLink} {
			sim := startWith(t, func(c *Config) { mod(c); c.Profile = p })
			var got []string
			if p == ProfilePage {
				for n := 1; ; n++ {
					pg, _ := getPage(t, sim, tok, from, to, n, 300)
					got = append(got, ids(pg.Events)...)
					if n >= *pg.TotalPages {
						break
					}
				}
			} else {
				u := eventsURL(sim.URL, "from", ts(from), "to", ts(to), "limit", "300")
				for u != "" {
					r := get(t, u, tok)
					var evs []map[string]any
					if r.status != 200 || json.Unmarshal(r.body, &evs) != nil {
						t.Fatalf("%d %.200s", r.status, r.body)
					}
					got = append(got, ids(evs)...)
					u = ""
					if m := linkRE.FindStringSubmatch(r.header.Get("Link")); m != nil {
						u = m[1]
					}
				}
			}
			if !slices.Equal(got, ids(evs)) {
				t.Fatalf("%s walk %d rows, cursor walk %d", p, len(got), len(evs))
			}
		}
	})
	t.Run("with second precision and late", func(t *testing.T) {
		t.Parallel()
		clk := &clock{t: t0}
		sim := startWith(t, func(c *Config) {
			mod(c)
			c.SecondPrecision, c.Faults.Late, c.LateDelay, c.Now = true, 0.1, 3*time.Hour, clk.Now
		})
		early := walk(t, sim.URL, tok, from, to, 200)
		clk.Add(4 * time.Hour)
		evs := walk(t, sim.URL, tok, from, to, 200)
		if len(early) >= len(evs) {
			t.Fatalf("late events: %d rows before the delay, %d after", len(early), len(evs))
		}
		n := 0
		for _, e := range evs {
			tm, _ := time.Parse(time.RFC3339, e["timestamp"].(string))
			if orig := idTime(t, e["id"].(string)).Truncate(time.Second); !tm.Equal(orig) {
				n++
				if tm.Sub(orig) != 20*time.Minute {
					t.Fatalf("copy %v after its stored original", tm.Sub(orig))
				}
			}
		}
		if n == 0 {
			t.Fatal("no copies")
		}
	})
	t.Run("retention and share follow the original", func(t *testing.T) {
		t.Parallel()
		sim := startWith(t, mod)
		cut := t0.Add(-3*time.Hour + 10*time.Minute)
		sim.SetRetention("org_1", cut)
		sim.SetVisibleShare("org_1", 0.8)
		vis := sim.VisibleEventIDs("org_1", from, to)
		seen := map[string]bool{}
		for _, e := range walk(t, sim.URL, tok, from, to, 500) {
			id := e["id"].(string)
			if idTime(t, id).Before(cut) {
				t.Fatalf("copy of %s, cut by retention, served", id)
			}
			seen[id] = true
		}
		for _, id := range vis {
			delete(seen, id)
		}
		if len(seen) != 0 {
			t.Fatalf("%d ids served that VisibleEventIDs does not list", len(seen))
		}
	})
}

func TestParseRedeliver(t *testing.T) {
	t.Parallel()
	f, err := ParseFaults("redeliver=0.01,late=0.02")
	if err != nil || f.Redeliver != 0.01 {
		t.Fatalf("parsed %+v, %v", f, err)
	}
	if f.String() != "late=0.02,redeliver=0.01" {
		t.Fatalf("String() = %q", f.String())
	}
	if _, err := ParseFaults("redeliver=1.5"); err == nil {
		t.Fatal("redeliver=1.5 accepted")
	}
}

func TestOptionValidation(t *testing.T) {
	t.Parallel()
	for name, mod := range map[string]func(*Config){
		"negative page cap":           func(c *Config) { c.PageCap = -1 },
		"redeliver delay of an hour":  func(c *Config) { c.RedeliverDelay = time.Hour },
		"negative redeliver delay":    func(c *Config) { c.RedeliverDelay = -time.Minute },
		"sub-ms redeliver delay":      func(c *Config) { c.RedeliverDelay = time.Microsecond },
		"sub-second delay, second ts": func(c *Config) { c.RedeliverDelay, c.SecondPrecision = 500*time.Millisecond, true },
	} {
		cfg := baseConfig()
		mod(&cfg)
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	s, err := New(baseConfig())
	if err != nil || s.Config().RedeliverDelay != 20*time.Minute {
		t.Fatalf("default redeliver delay %v (%v)", s.Config().RedeliverDelay, err)
	}
	// ClockOffset moves the default history end
	cfg := baseConfig()
	cfg.To, cfg.From, cfg.ClockOffset = time.Time{}, time.Time{}, -90*time.Minute
	if s, err := New(cfg); err != nil || !s.Config().To.Equal(t0.Add(-90*time.Minute)) {
		t.Fatalf("default To with a clock offset: %v (%v)", s.Config().To, err)
	}
}

// TestBadTimestampFault: the badts fault serves a share of events with an
// unparseable timestamp, the same events on every request.
func TestBadTimestampFault(t *testing.T) {
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	for _, rate := range []float64{0, 0.05} {
		s, err := New(Config{Seed: 3, Orgs: 1, Rate: 2000, From: start, To: start.Add(time.Hour),
			Faults: Faults{BadTimestamp: rate}, Now: func() time.Time { return start.Add(2 * time.Hour) }})
		if err != nil {
			t.Fatal(err)
		}
		bad, total := 0, 0
		for range 2 {
			n := 0
			h := s.hour(s.gens.get("org_1"), floorDiv(start.UnixMilli(), hourMs))
			total = h.n()
			for i := range h.n() {
				if bytes.Contains(h.blob[h.off[i]:h.off[i+1]], []byte(`"timestamp":"not a time"`)) {
					n++
				}
			}
			if bad != 0 && n != bad {
				t.Fatalf("rate %v: %d bad timestamps, then %d", rate, bad, n)
			}
			bad = n
		}
		if (rate == 0) != (bad == 0) || (rate > 0 && (bad*50 < total || bad*10 > total)) {
			t.Fatalf("rate %v: %d bad timestamps in an hour of %d events", rate, bad, total)
		}
	}
}
