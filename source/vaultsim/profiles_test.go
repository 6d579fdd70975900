package vaultsim

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

func startProfile(t *testing.T, p Profile) *Running {
	cfg := baseConfig()
	cfg.Profile = p
	return Start(t, cfg)
}

func TestProfilePage(t *testing.T) {
	t.Parallel()
	sim := startProfile(t, ProfilePage)
	tok := sim.Creds()[0].Token
	from, to := h0.Add(30*time.Minute), t0.Add(-7*time.Hour)
	var got []string
	for n := 1; ; n++ {
		r := get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to), "page", strconv.Itoa(n), "per_page", "250"), tok)
		var p struct {
			Events     []map[string]any `json:"events"`
			Page       int              `json:"page"`
			TotalPages int              `json:"total_pages"`
		}
		if r.status != 200 || json.Unmarshal(r.body, &p) != nil {
			t.Fatalf("page %d: %d %.200s", n, r.status, r.body)
		}
		if p.Page != n || (n < p.TotalPages && len(p.Events) != 250) {
			t.Fatalf("page %d: got page %d with %d events of %d pages", n, p.Page, len(p.Events), p.TotalPages)
		}
		got = append(got, ids(p.Events)...)
		if n >= p.TotalPages {
			break
		}
	}
	if want := sim.EventIDs("org_1", from, to); len(want) < 1000 || !slices.Equal(got, want) {
		t.Fatalf("page walk %d ids, truth %d", len(got), len(want))
	}
	r := get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to), "page", "1000"), tok)
	if r.status != 200 || !bytes.HasPrefix(r.body, []byte(`{"events":[],"page":1000,"total_pages":`)) {
		t.Fatalf("page past the end: %d %s", r.status, r.body)
	}
	for _, bad := range [][]string{{"per_page", "1001"}, {"page", "0"}, {"page", "x"}} {
		r := get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to), bad[0], bad[1]), tok)
		if r.status != 400 {
			t.Fatalf("%s=%s: status %d", bad[0], bad[1], r.status)
		}
	}
}

var linkRE = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

func TestProfileLink(t *testing.T) {
	t.Parallel()
	sim := startProfile(t, ProfileLink)
	tok := sim.Creds()[1].Token
	from, to := h0, t0.Add(-20*time.Hour)
	u := eventsURL(sim.URL, "from", ts(from), "to", ts(to), "limit", "333")
	var got []string
	for pages := 0; u != ""; pages++ {
		r := get(t, u, tok)
		var evs []map[string]any
		if r.status != 200 || json.Unmarshal(r.body, &evs) != nil {
			t.Fatalf("page %d: %d %.200s", pages, r.status, r.body)
		}
		got = append(got, ids(evs)...)
		u = ""
		if l := r.header.Get("Link"); l != "" {
			m := linkRE.FindStringSubmatch(l)
			if m == nil || !bytes.HasPrefix([]byte(m[1]), []byte(sim.URL+"/events/v1?")) {
				t.Fatalf("Link %q is not an absolute next URL on this host", l)
			}
			u = m[1]
			if len(evs) != 333 {
				t.Fatalf("short page %d (%d events) with a next link", pages, len(evs))
			}
		}
	}
	if want := sim.EventIDs("org_2", from, to); len(want) < 1000 || !slices.Equal(got, want) {
		t.Fatalf("link walk %d ids, truth %d", len(got), len(want))
	}
}

func TestProfileCamel(t *testing.T) {
	t.Parallel()
	sim := startProfile(t, ProfileCamel)
	tok := sim.Creds()[0].Token
	from, to := t0.Add(-4*time.Hour), t0
	evs := walk(t, sim.URL, tok, from, to, 400)
	want := sim.Events("org_1", from, to)
	if len(evs) != len(want) || len(want) == 0 {
		t.Fatalf("camel walk %d events, truth %d", len(evs), len(want))
	}
	for i, e := range evs {
		if _, ok := e["id"]; ok {
			t.Fatal("camel events must not carry an id")
		}
		for _, k := range []string{"occurredAt", "sourceIp", "actor", "resource", "detail"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("camel event lacks %s: %v", k, e)
			}
		}
		actor, ok := e["actor"].(map[string]any)
		if !ok || actor["type"] == nil || actor["id"] == nil {
			t.Fatalf("actor is not an object: %v", e["actor"])
		}
		if _, ok := e["resource"].(map[string]any); !ok {
			t.Fatalf("resource is not an object: %v", e["resource"])
		}
		ds, ok := e["detail"].(string)
		var d map[string]any
		if !ok || json.Unmarshal([]byte(ds), &d) != nil || len(d) < 2 {
			t.Fatalf("detail is not a JSON object in a string: %v", e["detail"])
		}
		// the canonical event renders to exactly what was served
		served, _ := json.Marshal(e)
		var canon map[string]any
		if err := json.Unmarshal(want[i].AppendJSON(nil, ProfileCamel), &canon); err != nil {
			t.Fatal(err)
		}
		if c, _ := json.Marshal(canon); !bytes.Equal(c, served) {
			t.Fatalf("event %d: served %s, Events gives %s", i, served, c)
		}
	}
}

func TestProfileDates(t *testing.T) {
	t.Parallel()
	sim := startProfile(t, ProfileDates)
	tok := sim.Creds()[0].Token
	r := get(t, eventsURL(sim.URL, "from", "2026-06-02T00:00:00Z", "to", "2026-06-02"), tok)
	if r.status != 400 {
		t.Fatalf("timestamp accepted by the dates profile: %d", r.status)
	}
	assertError(t, r, "invalid_parameter")
	// to is inclusive of its whole day
	var got []string
	cur := ""
	for {
		params := []string{"from", "2026-06-02", "to", "2026-06-02", "limit", "1000"}
		if cur != "" {
			params = append(params, "cursor", cur)
		}
		p := decodePage(t, get(t, eventsURL(sim.URL, params...), tok))
		got = append(got, ids(p.Data)...)
		if p.NextCursor == nil {
			break
		}
		cur = *p.NextCursor
	}
	day := time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC)
	if want := sim.EventIDs("org_1", day, day.Add(24*time.Hour)); len(want) == 0 || !slices.Equal(got, want) {
		t.Fatalf("dates walk %d ids, truth of the whole day %d", len(got), len(want))
	}
}
