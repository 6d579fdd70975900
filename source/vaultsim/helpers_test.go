package vaultsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 6, 3, 0, 0, 0, 0, time.UTC) // history end and default "now"
	h0 = t0.Add(-36 * time.Hour)                     // history start
)

// clock is an injectable Config.Now that tests move forward.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func baseConfig() Config {
	return Config{Seed: 42, Orgs: 3, From: h0, To: t0, Rate: 150, Now: func() time.Time { return t0 }}
}

type resp struct {
	status int
	header http.Header
	body   []byte
	err    error // body read error (cut connections)
}

func get(t testing.TB, rawURL, token string) resp {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return resp{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b, err: err}
}

func eventsURL(base string, params ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		v.Set(params[i], params[i+1])
	}
	return base + "/events/v1?" + v.Encode()
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

type page struct {
	Data       []map[string]any `json:"data"`
	NextCursor *string          `json:"next_cursor"`
}

func decodePage(t testing.TB, r resp) page {
	t.Helper()
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("status %d err %v body %.300s", r.status, r.err, r.body)
	}
	var p page
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode page: %v: %.300s", err, r.body)
	}
	return p
}

// walk follows next_cursor over [from,to) and returns every event in order.
// It retries a failed page (any non-200, cut or malformed body) up to 20 times.
func walk(t testing.TB, base, token string, from, to time.Time, limit int) []map[string]any {
	t.Helper()
	var out []map[string]any
	cur := ""
	for pages := 0; ; pages++ {
		if pages > 100000 {
			t.Fatal("walk does not end")
		}
		params := []string{"from", ts(from), "to", ts(to), "limit", strconv.Itoa(limit)}
		if cur != "" {
			params = append(params, "cursor", cur)
		}
		var p page
		for attempt := 0; ; attempt++ {
			r := get(t, eventsURL(base, params...), token)
			if r.err == nil && r.status == http.StatusOK && json.Unmarshal(r.body, &p) == nil {
				break
			}
			if attempt > 20 {
				t.Fatalf("page never succeeded: status %d err %v body %.200s", r.status, r.err, r.body)
			}
			p = page{}
		}
		out = append(out, p.Data...)
		if p.NextCursor == nil {
			return out
		}
		cur = *p.NextCursor
	}
}

func ids(evs []map[string]any) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i], _ = e["id"].(string)
	}
	return out
}
