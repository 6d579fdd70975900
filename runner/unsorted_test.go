package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/config"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/local"
	"github.com/vaultsink/vaultsink/source"
)

// unsortedAPI serves each hour as a cursor-paged list of events that is NOT
// in timestamp order, with one event repeated far from its first copy.
type unsortedAPI struct {
	now      time.Time // the API's clock, sent in Date headers
	mu       sync.Mutex
	requests map[string]int // window start -> requests
	events   map[string][]map[string]any
}

const unsortedPageSize = 4

func newUnsortedAPI(t *testing.T, start time.Time, hours int) (*unsortedAPI, *httptest.Server) {
	a := &unsortedAPI{requests: map[string]int{}, events: map[string][]map[string]any{}}
	for h := range hours {
		ws := start.Add(time.Duration(h) * time.Hour)
		var evs []map[string]any
		for i := range 20 {
			// timestamps descend through the hour: out of order from the
			// second event on
			ts := ws.Add(time.Duration(59-i*2) * time.Minute)
			evs = append(evs, map[string]any{
				"id": fmt.Sprintf("evt_%d_%02d", h, i), "timestamp": ts.Format(time.RFC3339),
				"action": "USER_LOGIN", "org_id": "org_1",
			})
		}
		// the first event again on the last page, and one in the middle
		evs = append(evs, evs[0])
		evs = slices.Insert(evs, 9, evs[3])
		a.events[ws.Format(time.RFC3339)] = evs
	}
	srv := httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(srv.Close)
	return a, srv
}

func (a *unsortedAPI) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	// The client asks boundary_overlap (1s) before the window.
	f, _ := time.Parse(time.RFC3339Nano, q.Get("from"))
	from := f.Add(time.Second).Truncate(time.Hour).Format(time.RFC3339)
	a.mu.Lock()
	a.requests[from]++
	evs := a.events[from]
	a.mu.Unlock()
	off, _ := strconv.Atoi(q.Get("cursor"))
	end := min(off+unsortedPageSize, len(evs))
	body := map[string]any{"data": evs[off:end], "next_cursor": nil}
	if end < len(evs) {
		body["next_cursor"] = strconv.Itoa(end)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Date", a.now.UTC().Format(http.TimeFormat))
	_ = json.NewEncoder(w).Encode(body)
}

// TestSyncUnsortedWindow: an API that serves a window out of timestamp
// order, with repeats far from their first copy, still gets each event
// written exactly once, in one walk per window.
func TestSyncUnsortedWindow(t *testing.T) {
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	api, srv := newUnsortedAPI(t, start, 2)
	api.now = start.Add(2*time.Hour + 10*time.Minute)

	cfg := source.Config{BaseURL: srv.URL, Pagination: "cursor", PageSize: unsortedPageSize}
	cfg.SetDefaults()
	cfg.Retry.MaxAttempts = 1
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	reg := prometheus.NewRegistry()
	client, sink, store := testParts(t, cfg, log, reg)
	org := source.Org{ID: "org_1", Credential: source.Credential{Token: secret.New("tok")}}
	e := New(Options{
		Source: client, Store: store, Log: log, Registerer: reg, Settle: 5 * time.Minute,
		Orgs: []OrgSpec{{Resolved: config.Resolved{Org: org, Start: start, Window: time.Hour}, Sink: sink}},
		Now:  func() time.Time { return start.Add(2*time.Hour + 10*time.Minute) },
	})
	sum := e.Sync(context.Background(), context.Background())
	if !sum.OK() {
		t.Fatalf("sync failed:\n%s\nlogs:\n%s", sum, logs.String())
	}
	if r := sum.Results[0]; r.Windows != 2 || r.Events != 40 {
		t.Fatalf("windows %d events %d, want 2 40", r.Windows, r.Events)
	}
	for h := range 2 {
		w := event.Window{Org: "org_1", Start: start.Add(time.Duration(h) * time.Hour), End: start.Add(time.Duration(h+1) * time.Hour)}
		seen := map[string]int{}
		if err := sink.EventIDs(context.Background(), w, func(id string) error { seen[id]++; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 20 {
			t.Errorf("window %s: %d distinct ids, want 20", w.Range(), len(seen))
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("window %s: id %s written %d times", w.Range(), id, n)
			}
		}
	}
	// 22 events = 6 pages, one walk per window.
	api.mu.Lock()
	r1, r2 := api.requests[start.Format(time.RFC3339)], api.requests[start.Add(time.Hour).Format(time.RFC3339)]
	api.mu.Unlock()
	if r1 != 6 || r2 != 6 {
		t.Errorf("requests per window: %d, %d; want 6, 6", r1, r2)
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// testParts builds a source client for cfg, a local sink and a file
// checkpoint store in temporary directories.
func testParts(t *testing.T, cfg source.Config, log *slog.Logger, reg *prometheus.Registry) (*source.Client, *local.Sink, *checkpoint.FileStore) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	client, err := source.NewClient(cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := local.New(local.Config{Path: t.TempDir()}, sinks.Env{Registerer: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	store, err := checkpoint.OpenFileStore(t.TempDir(), log)
	if err != nil {
		t.Fatal(err)
	}
	return client, sink, store
}
