package vaultsim

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCursorWalkEqualsTruth(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	tok := sim.Creds()[0].Token
	from, to := h0.Add(90*time.Minute+17*time.Second), t0.Add(-5*time.Hour)
	evs := walk(t, sim.URL, tok, from, to, 97)
	got := ids(evs)
	want := sim.EventIDs("org_1", from, to)
	if len(want) < 1000 {
		t.Fatalf("window too small to test paging: %d events", len(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("walk returned %d ids, truth has %d (first diff matters)", len(got), len(want))
	}
	n, digest := sim.Truth("org_1", from, to)
	if n != len(got) || digest != DigestIDs(got) {
		t.Fatalf("Truth = %d %s, walk = %d %s", n, digest, len(got), DigestIDs(got))
	}
	// sorted by (timestamp, id), unique, inside the window, of this org
	seen := map[string]bool{}
	for i, e := range evs {
		id := e["id"].(string)
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		tm, err := time.Parse(time.RFC3339Nano, e["timestamp"].(string))
		if err != nil || tm.Before(from) || !tm.Before(to) {
			t.Fatalf("event %d timestamp %v outside [%v,%v) (err %v)", i, e["timestamp"], from, to, err)
		}
		if e["org_id"] != "org_1" {
			t.Fatalf("event of org %v", e["org_id"])
		}
		if i > 0 {
			p := evs[i-1]
			if a, b := p["timestamp"].(string), e["timestamp"].(string); a > b || a == b && p["id"].(string) >= id {
				t.Fatalf("not sorted at %d: %v/%v then %v/%v", i, a, p["id"], b, id)
			}
		}
	}
}

func TestBounds(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	tok := sim.Creds()[0].Token
	all := sim.Events("org_1", h0, t0)
	m := len(all) / 2
	for all[m].Timestamp.Equal(all[m-1].Timestamp) || all[m].Timestamp.Equal(all[m+1].Timestamp) {
		m++ // want an event alone in its millisecond
	}
	e := all[m]
	t.Run("from is inclusive", func(t *testing.T) {
		p := decodePage(t, get(t, eventsURL(sim.URL, "from", ts(e.Timestamp), "to", ts(e.Timestamp.Add(time.Hour)), "limit", "1"), tok))
		if len(p.Data) != 1 || p.Data[0]["id"] != e.ID {
			t.Fatalf("first event at from = %v, want %s", p.Data, e.ID)
		}
	})
	t.Run("to is exclusive", func(t *testing.T) {
		evs := walk(t, sim.URL, tok, e.Timestamp.Add(-time.Minute), e.Timestamp, 1000)
		if len(evs) == 0 {
			t.Fatal("no events in the minute before")
		}
		if last := evs[len(evs)-1]["id"]; last == e.ID {
			t.Fatalf("event exactly at to was returned")
		}
		if last := evs[len(evs)-1]["id"]; last != all[m-1].ID {
			t.Fatalf("last event %v, want %s", last, all[m-1].ID)
		}
	})
	t.Run("bare dates are midnight UTC", func(t *testing.T) {
		evs := walk(t, sim.URL, tok, time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC), t0, 1000)
		p := decodePage(t, get(t, eventsURL(sim.URL, "from", "2026-06-02", "to", "2026-06-03", "limit", "1000"), tok))
		if len(evs) == 0 || p.Data[0]["id"] != evs[0]["id"] {
			t.Fatalf("date bounds differ from midnight timestamps")
		}
	})
	t.Run("history bounds clip the window", func(t *testing.T) {
		evs := walk(t, sim.URL, tok, h0.Add(-48*time.Hour), h0.Add(time.Hour), 1000)
		n, _ := sim.Truth("org_1", h0, h0.Add(time.Hour))
		if len(evs) != n || n == 0 {
			t.Fatalf("got %d events before history start + 1h, want %d", len(evs), n)
		}
	})
}

func TestLimits(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	tok := sim.Creds()[0].Token
	from, to := ts(h0), ts(t0)
	for _, tc := range []struct {
		limit  string
		status int
		n      int
	}{
		{"", 200, 100},
		{"1", 200, 1},
		{"1000", 200, 1000},
		{"1001", 400, 0},
		{"0", 400, 0},
		{"-3", 400, 0},
		{"ten", 400, 0},
	} {
		t.Run("limit="+tc.limit, func(t *testing.T) {
			params := []string{"from", from, "to", to}
			if tc.limit != "" {
				params = append(params, "limit", tc.limit)
			}
			r := get(t, eventsURL(sim.URL, params...), tok)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if tc.status == 200 {
				if p := decodePage(t, r); len(p.Data) != tc.n || p.NextCursor == nil {
					t.Fatalf("got %d events (next %v), want %d and a cursor", len(p.Data), p.NextCursor, tc.n)
				}
			} else {
				assertError(t, r, "invalid_parameter")
			}
		})
	}
}

func assertError(t *testing.T, r resp, code string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("error body %s, want code %s (err %v)", r.body, code, err)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	c := sim.Creds()
	from, to := ts(h0), ts(t0)
	ok := eventsURL(sim.URL, "from", from, "to", to, "limit", "5")
	first := decodePage(t, get(t, ok, c[0].Token))
	cur := *first.NextCursor
	revoked := sim.MintJWT("org_1", "", t0.Add(time.Hour))
	sim.Revoke(revoked)
	for _, tc := range []struct {
		name, url, token string
		status           int
		code             string
	}{
		{"no token", ok, "", 401, "missing_token"},
		{"unknown token", ok, "vt_0123456789abcdef0123456789abcdef", 401, "invalid_token"},
		{"jwt bad signature", ok, c[0].JWT[:len(c[0].JWT)-4] + "AAAA", 401, "invalid_token"},
		{"jwt expired", ok, sim.MintJWT("org_1", "", t0.Add(-time.Second)), 401, "token_expired"},
		{"jwt revoked", ok, revoked, 401, "token_revoked"},
		{"scim token", ok, c[0].SCIMToken, 403, "insufficient_scope"},
		{"scim jwt", ok, sim.MintJWT("org_1", "scim", t0.Add(time.Hour)), 403, "insufficient_scope"},
		{"missing from", eventsURL(sim.URL, "to", to), c[0].Token, 400, "invalid_parameter"},
		{"bad from", eventsURL(sim.URL, "from", "yesterday", "to", to), c[0].Token, 400, "invalid_parameter"},
		{"from after to", eventsURL(sim.URL, "from", to, "to", from), c[0].Token, 400, "invalid_parameter"},
		{"garbage cursor", eventsURL(sim.URL, "from", from, "to", to, "cursor", "bm9wZQ"), c[0].Token, 400, "invalid_cursor"},
		{"cursor with other to", eventsURL(sim.URL, "from", from, "to", ts(t0.Add(-time.Hour)), "cursor", cur), c[0].Token, 400, "invalid_cursor"},
		{"cursor with other from", eventsURL(sim.URL, "from", ts(h0.Add(time.Second)), "to", to, "cursor", cur), c[0].Token, 400, "invalid_cursor"},
		{"cursor of another org", eventsURL(sim.URL, "from", from, "to", to, "cursor", cur), c[1].Token, 400, "invalid_cursor"},
		{"unknown path", sim.URL + "/events/v2", c[0].Token, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, tc.url, tc.token)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			assertError(t, r, tc.code)
		})
	}
	t.Run("cursor with omitted to keeps its bounds", func(t *testing.T) {
		r := get(t, eventsURL(sim.URL, "from", from, "cursor", cur, "limit", "5"), c[0].Token)
		if p := decodePage(t, r); len(p.Data) != 5 {
			t.Fatalf("got %d events", len(p.Data))
		}
	})
	t.Run("health", func(t *testing.T) {
		r := get(t, strings.TrimSuffix(sim.URL, "/api")+"/health", "")
		if r.status != 200 || !bytes.Contains(r.body, []byte(`"ok"`)) {
			t.Fatalf("health: %d %s", r.status, r.body)
		}
	})
	st := sim.Requests()
	if st.ByOrg[""][401] < 5 || st.ByOrg[""][403] != 2 || st.ByOrg["org_1"][400] < 6 {
		t.Fatalf("request counters do not add up: %+v", st)
	}
}

func TestOrgIsolation(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	c := sim.Creds()
	from, to := t0.Add(-3*time.Hour), t0
	seen := map[string]string{}
	for _, cr := range c {
		for _, tok := range []string{cr.Token, cr.JWT} {
			evs := walk(t, sim.URL, tok, from, to, 1000)
			if len(evs) == 0 {
				t.Fatalf("%s: no events", cr.OrgID)
			}
			for _, e := range evs {
				if e["org_id"] != cr.OrgID {
					t.Fatalf("%s token saw an event of %v", cr.OrgID, e["org_id"])
				}
				if o, dup := seen[e["id"].(string)]; dup && o != cr.OrgID {
					t.Fatalf("id %v served to %s and %s", e["id"], o, cr.OrgID)
				}
				seen[e["id"].(string)] = cr.OrgID
			}
			if !slices.Equal(ids(evs), sim.EventIDs(cr.OrgID, from, to)) {
				t.Fatalf("%s: walk differs from truth", cr.OrgID)
			}
		}
	}
	t.Run("token without org context gets zero rows", func(t *testing.T) {
		p := decodePage(t, get(t, eventsURL(sim.URL, "from", ts(from), "to", ts(to)), sim.MintJWT("", "", t0.Add(time.Hour))))
		if len(p.Data) != 0 || p.NextCursor != nil {
			t.Fatalf("got %d rows", len(p.Data))
		}
	})
}

func TestDeterminism(t *testing.T) {
	t.Parallel()
	a, b := Start(t, baseConfig()), Start(t, baseConfig())
	other := baseConfig()
	other.Seed++
	c := Start(t, other)
	if a.Creds()[0] != b.Creds()[0] || a.Creds()[0].Token == c.Creds()[0].Token {
		t.Fatal("credentials are not a function of the seed")
	}
	u := "/events/v1?from=" + ts(h0.Add(7*time.Hour)) + "&to=" + ts(t0) + "&limit=1000"
	ra, rb, rc := get(t, a.URL+u, a.Creds()[1].Token), get(t, b.URL+u, b.Creds()[1].Token), get(t, c.URL+u, c.Creds()[1].Token)
	if ra.status != 200 || !bytes.Equal(ra.body, rb.body) {
		t.Fatalf("same seed, different pages (%d, %d bytes)", len(ra.body), len(rb.body))
	}
	if bytes.Equal(ra.body, rc.body) {
		t.Fatal("different seeds, same page")
	}
	// the whole walk, again
	wa := walk(t, a.URL, a.Creds()[2].Token, t0.Add(-4*time.Hour), t0, 1000)
	wb := walk(t, b.URL, b.Creds()[2].Token, t0.Add(-4*time.Hour), t0, 1000)
	ja, _ := json.Marshal(wa)
	jb, _ := json.Marshal(wb)
	if !bytes.Equal(ja, jb) {
		t.Fatal("same seed, different walks")
	}
}

func TestEventContent(t *testing.T) {
	t.Parallel()
	sim := Start(t, baseConfig())
	evs := walk(t, sim.URL, sim.Creds()[0].Token, t0.Add(-14*time.Hour), t0, 1000)
	actions, actors, sev := map[string]bool{}, map[string]bool{}, map[string]int{}
	v6, size := 0, 0
	for _, e := range evs {
		b, _ := json.Marshal(e)
		size += len(b)
		for _, k := range []string{"id", "org_id", "timestamp", "action", "title", "category", "severity", "actor", "resource", "source_ip", "detail"} {
			if _, ok := e[k]; !ok {
				t.Fatalf("event lacks %s: %s", k, b)
			}
		}
		id := e["id"].(string)
		if len(id) != 30 || !strings.HasPrefix(id, "evt_") || strings.Trim(id[4:], crockford) != "" {
			t.Fatalf("bad id %q", id)
		}
		if d := e["detail"].(map[string]any); len(d) < 2 || len(d) > 6 {
			t.Fatalf("detail has %d keys: %s", len(d), b)
		}
		if len(e["timestamp"].(string)) != len("2026-06-01T10:15:30.123Z") {
			t.Fatalf("timestamp %v", e["timestamp"])
		}
		actions[e["action"].(string)] = true
		actors[e["actor"].(string)] = true
		sev[e["severity"].(string)]++
		if strings.Contains(e["source_ip"].(string), ":") {
			v6++
		}
	}
	if len(actions) < 40 || len(actors) < 500 || v6 == 0 || sev["info"] < sev["low"] || sev["low"] < sev["high"] || sev["critical"] == 0 {
		t.Fatalf("not realistic: %d actions, %d actors, %d IPv6, severities %v", len(actions), len(actors), v6, sev)
	}
	if avg := size / len(evs); avg < 330 || avg > 520 {
		t.Fatalf("average event is %d bytes", avg)
	}
	// Events renders exactly the served bytes
	r := get(t, eventsURL(sim.URL, "from", ts(h0), "to", ts(t0), "limit", "3"), sim.Creds()[0].Token)
	want := sim.Events("org_1", h0, t0)[:3]
	var b []byte
	b = append(b, `{"data":[`...)
	for i, e := range want {
		if i > 0 {
			b = append(b, ',')
		}
		b = e.AppendJSON(b, ProfileDefault)
	}
	if !bytes.HasPrefix(r.body, append(b, ']')) {
		t.Fatalf("Events/AppendJSON differ from the served page:\n%s\n%s", b, r.body)
	}
}

func TestLive(t *testing.T) {
	t.Parallel()
	clk := &clock{t: t0}
	cfg := baseConfig()
	cfg.Live, cfg.Now = true, clk.Now
	sim := Start(t, cfg)
	tok := sim.Creds()[0].Token
	from := t0.Add(-time.Hour)
	before := walk(t, sim.URL, tok, from, t0.Add(2*time.Hour), 1000)
	clk.Add(90 * time.Minute)
	after := walk(t, sim.URL, tok, from, t0.Add(2*time.Hour), 1000)
	n, _ := sim.Truth("org_1", from, t0.Add(90*time.Minute))
	if len(before) == 0 || len(after) <= len(before) || len(after) != n {
		t.Fatalf("live history did not grow to now: %d then %d events, truth to now %d", len(before), len(after), n)
	}
	if !slices.Equal(ids(after[:len(before)]), ids(before)) {
		t.Fatal("history changed as it grew")
	}
	r := get(t, eventsURL(sim.URL, "from", ts(t0)), tok) // to omitted = now
	if p := decodePage(t, r); len(p.Data) == 0 {
		t.Fatal("to omitted returned nothing")
	}
}
