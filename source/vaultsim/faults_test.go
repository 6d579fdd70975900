package vaultsim

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseFaults(t *testing.T) {
	t.Parallel()
	f, err := ParseFaults("429=0.05, 500=0.02,502=0.01,503=0.01,slow=0.01,cut=0.01,malformed=0.005,dup=0.01,late=0.02,offhost=0.001,revoke-after=7")
	if err != nil {
		t.Fatal(err)
	}
	if f.TooMany != 0.05 || f.Malformed != 0.005 || f.OffHost != 0.001 || f.RevokeAfter != 7 {
		t.Fatalf("parsed %+v", f)
	}
	g, err := ParseFaults(f.String())
	if err != nil || g != f {
		t.Fatalf("round trip %q: %+v, %v", f.String(), g, err)
	}
	for _, bad := range []string{"404=0.1", "429", "429=2", "slow=-1", "revoke-after=x"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("ParseFaults(%q) accepted", bad)
		}
	}
}

func startFaults(t *testing.T, spec string, mod func(*Config)) *Running {
	t.Helper()
	cfg := baseConfig()
	f, err := ParseFaults(spec)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Faults = f
	cfg.SlowDelay = 50 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	return Start(t, cfg)
}

func TestFaultKinds(t *testing.T) {
	t.Parallel()
	q := "/events/v1?from=" + ts(t0.Add(-time.Hour)) + "&to=" + ts(t0) + "&limit=50"
	for _, tc := range []struct {
		spec  string
		check func(t *testing.T, r resp)
	}{
		{"429=1", func(t *testing.T, r resp) {
			if r.status != 429 || r.header.Get("Retry-After") != "3" {
				t.Fatalf("status %d Retry-After %q", r.status, r.header.Get("Retry-After"))
			}
			assertError(t, r, "rate_limited")
		}},
		{"500=1", func(t *testing.T, r resp) { assertStatus(t, r, 500); assertError(t, r, "internal_error") }},
		{"502=1", func(t *testing.T, r resp) {
			assertStatus(t, r, 502)
			if !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Fatalf("502 from a gateway should be HTML, got %q", r.header.Get("Content-Type"))
			}
		}},
		{"503=1", func(t *testing.T, r resp) { assertStatus(t, r, 503); assertError(t, r, "unavailable") }},
		{"cut=1", func(t *testing.T, r resp) {
			if r.err == nil {
				t.Fatalf("cut connection read cleanly: %d, %d bytes", r.status, len(r.body))
			}
		}},
		{"malformed=1", func(t *testing.T, r resp) {
			assertStatus(t, r, 200)
			if json.Valid(r.body) || len(r.body) == 0 {
				t.Fatalf("malformed body is valid JSON: %.100s", r.body)
			}
		}},
		{"slow=1", func(t *testing.T, r resp) { assertStatus(t, r, 200) }},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			sim := startFaults(t, tc.spec, func(c *Config) { c.RetryAfter = 3 })
			start := time.Now()
			r := get(t, sim.URL+q, sim.Creds()[0].Token)
			tc.check(t, r)
			kind, _, _ := strings.Cut(tc.spec, "=")
			if sim.Requests().Faults[kind] != 1 {
				t.Fatalf("fault not counted: %+v", sim.Requests().Faults)
			}
			if kind == "slow" && time.Since(start) < 50*time.Millisecond {
				t.Fatalf("slow response was not delayed")
			}
		})
	}
}

func assertStatus(t *testing.T, r resp, want int) {
	t.Helper()
	if r.err != nil || r.status != want {
		t.Fatalf("status %d (err %v), want %d: %.200s", r.status, r.err, want, r.body)
	}
}

// A retrying client gets every event exactly once, and the same requests
// meet the same faults on another server with the same seed.
func TestFaultsRetriesSucceedReproducibly(t *testing.T) {
	t.Parallel()
	spec := "429=0.2,500=0.1,502=0.1,503=0.1,cut=0.1,malformed=0.1"
	from, to := t0.Add(-6*time.Hour), t0
	var traces [2][]int
	for i := range 2 {
		sim := startFaults(t, spec, nil)
		evs := walk(t, sim.URL, sim.Creds()[0].Token, from, to, 20)
		if !slices.Equal(ids(evs), sim.EventIDs("org_1", from, to)) {
			t.Fatalf("walk under faults differs from truth")
		}
		st := sim.Requests()
		for _, k := range []string{"429", "500", "502", "503", "cut", "malformed"} {
			if st.Faults[k] == 0 {
				t.Errorf("fault %s never fired in %d requests", k, st.Total)
			}
		}
		for _, k := range []int{200, 429, 500, 502, 503} {
			traces[i] = append(traces[i], int(st.ByStatus[k]))
		}
		traces[i] = append(traces[i], int(st.Faults["cut"]), int(st.Faults["malformed"]))
	}
	if !slices.Equal(traces[0], traces[1]) {
		t.Fatalf("faults not reproducible: %v vs %v", traces[0], traces[1])
	}
}

func TestFaultDup(t *testing.T) {
	t.Parallel()
	sim := startFaults(t, "dup=1", nil)
	tok := sim.Creds()[0].Token
	from, to := t0.Add(-3*time.Hour), t0
	var pages [][]map[string]any
	cur := ""
	for {
		params := []string{"from", ts(from), "to", ts(to), "limit", "100"}
		if cur != "" {
			params = append(params, "cursor", cur)
		}
		u := eventsURL(sim.URL, params...)
		p := decodePage(t, get(t, u, tok))
		if again := get(t, u, tok); !bytes.Contains(again.body, []byte(p.Data[0]["id"].(string))) {
			t.Fatal("dup is not deterministic per page boundary")
		}
		pages = append(pages, p.Data)
		if p.NextCursor == nil {
			break
		}
		cur = *p.NextCursor
	}
	var uniq []string
	for i, p := range pages {
		if i > 0 {
			prev := pages[i-1]
			if p[0]["id"] != prev[len(prev)-1]["id"] {
				t.Fatalf("page %d does not start with the last event of page %d", i, i-1)
			}
			p = p[1:]
		}
		uniq = append(uniq, ids(p)...)
	}
	if len(pages) < 3 || !slices.Equal(uniq, sim.EventIDs("org_1", from, to)) {
		t.Fatalf("%d pages; deduplicated walk differs from truth", len(pages))
	}
}

func TestFaultLate(t *testing.T) {
	t.Parallel()
	clk := &clock{t: t0}
	sim := startFaults(t, "late=0.2", func(c *Config) { c.Now = clk.Now; c.LateDelay = 2 * time.Hour })
	tok := sim.Creds()[0].Token
	from, to := t0.Add(-4*time.Hour), t0
	all := sim.Events("org_1", from, to)
	var visible []string
	hidden := 0
	for _, e := range all {
		if e.Late && e.Timestamp.Add(2*time.Hour).After(t0) {
			hidden++
			continue
		}
		visible = append(visible, e.ID)
	}
	if hidden == 0 {
		t.Fatal("no late events to test")
	}
	if got := ids(walk(t, sim.URL, tok, from, to, 500)); !slices.Equal(got, visible) {
		t.Fatalf("before the delay: %d ids, want %d (%d hidden)", len(got), len(visible), hidden)
	}
	clk.Add(2 * time.Hour)
	if got := ids(walk(t, sim.URL, tok, from, to, 500)); !slices.Equal(got, sim.EventIDs("org_1", from, to)) {
		t.Fatalf("after the delay: %d ids, want all %d", len(got), len(all))
	}
}

func TestFaultOffHost(t *testing.T) {
	t.Parallel()
	cfg := func(c *Config) { c.Profile = ProfileLink }
	sim := startFaults(t, "offhost=1", cfg)
	r := get(t, eventsURL(sim.URL, "from", ts(t0.Add(-3*time.Hour)), "to", ts(t0), "limit", "10"), sim.Creds()[0].Token)
	assertStatus(t, r, 200)
	m := linkRE.FindStringSubmatch(r.header.Get("Link"))
	if m == nil {
		t.Fatalf("no Link: %q", r.header.Get("Link"))
	}
	u, _ := url.Parse(m[1])
	own, _ := url.Parse(sim.URL)
	_, port, _ := net.SplitHostPort(own.Host)
	if u.Host != "127.0.0.2:"+port {
		t.Fatalf("off-host link points at %s", u.Host)
	}
	// a request that followed it to this server would be counted
	req, _ := http.NewRequest(http.MethodGet, sim.URL+"/events/v1?"+u.RawQuery, nil)
	req.Host = u.Host
	req.Header.Set("Authorization", "Bearer "+sim.Creds()[0].Token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if st := sim.Requests(); st.OffHost != 1 || st.Faults["offhost"] != 2 {
		t.Fatalf("off-host counters: %+v", st)
	}

	custom := startFaults(t, "offhost=1", func(c *Config) { cfg(c); c.OffHost = "evil.example:8443" })
	r = get(t, eventsURL(custom.URL, "from", ts(t0.Add(-3*time.Hour)), "to", ts(t0), "limit", "10"), custom.Creds()[0].Token)
	if !strings.HasPrefix(r.header.Get("Link"), "<http://evil.example:8443/api/events/v1?") {
		t.Fatalf("Link %q", r.header.Get("Link"))
	}
}

func TestFaultRevokeAfter(t *testing.T) {
	t.Parallel()
	sim := startFaults(t, "revoke-after=3", nil)
	u := eventsURL(sim.URL, "from", ts(t0.Add(-time.Hour)), "to", ts(t0))
	c := sim.Creds()
	for i := range 3 {
		assertStatus(t, get(t, u, c[0].Token), 200)
		_ = i
	}
	for range 2 {
		r := get(t, u, c[0].Token)
		assertStatus(t, r, 401)
		assertError(t, r, "token_revoked")
	}
	assertStatus(t, get(t, u, c[1].Token), 200) // other credentials unaffected
	assertStatus(t, get(t, u, c[0].JWT), 200)
}
