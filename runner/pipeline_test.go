package runner

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/config"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// failCommit is a sink whose units fail to commit the window starting at
// bad, once wait is closed (or after 5 s).
type failCommit struct {
	sinks.Sink
	bad  time.Time
	wait <-chan struct{}
}

type failUnit struct {
	sinks.Unit
	fail bool
	wait <-chan struct{}
}

func (s *failCommit) Open(ctx context.Context, w event.Window) (sinks.Unit, error) {
	u, err := s.Sink.Open(ctx, w)
	if err != nil {
		return nil, err
	}
	return &failUnit{Unit: u, fail: w.Start.Equal(s.bad), wait: s.wait}, nil
}

func (u *failUnit) Commit(ctx context.Context) (sinks.Result, error) {
	if u.fail {
		select {
		case <-u.wait:
		case <-time.After(5 * time.Second):
		}
		return sinks.Result{}, errors.New("injected commit failure")
	}
	return u.Unit.Commit(ctx)
}

// TestLookahead: the next window's walk starts while the current window is
// still being committed; when that commit fails, the walk read ahead is
// stopped and its pages released (no goroutine or buffer left behind), the
// checkpoint stays at the failed window, and the next sync writes every
// window exactly once.
func TestLookahead(t *testing.T) {
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	sim, err := vaultsim.New(vaultsim.Config{Seed: 5, Orgs: 1, From: start, To: start.Add(4 * time.Hour),
		Now: func() time.Time { return start.Add(5 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	hour := func(h int) time.Time { return start.Add(time.Duration(h) * time.Hour) }
	var mu sync.Mutex
	requests := map[string]int{} // window start -> requests
	third := make(chan struct{}) // closed at the first request for the third window
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, _ := time.Parse(time.RFC3339Nano, r.URL.Query().Get("from"))
		from := f.Add(time.Second).Truncate(time.Hour).Format(time.RFC3339) // the client asks 1s early (boundary_overlap)
		mu.Lock()
		requests[from]++
		mu.Unlock()
		if from == hour(2).Format(time.RFC3339) {
			once.Do(func() { close(third) })
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	// 100-event pages: ~40 a window, far more than a walk may read ahead
	// (walkBuffer), so the third window cannot finish and start a fourth.
	cfg := source.Config{BaseURL: srv.URL + "/api", PageSize: 100}
	cfg.SetDefaults()
	reg := prometheus.NewRegistry()
	client, good, store := testParts(t, cfg, nil, reg)
	var token string
	for _, c := range sim.Creds() {
		if c.OrgID == "org_1" {
			token = c.Token
		}
	}
	org := source.Org{ID: "org_1", Credential: source.Credential{Token: secret.New(token)}}
	engine := func(sink sinks.Sink, mem memory.Allocator) *Engine {
		return New(Options{
			Source: client, Store: store, Registerer: reg, Settle: time.Minute, Mem: mem,
			Orgs: []OrgSpec{{Resolved: config.Resolved{Org: org, Start: start, Window: time.Hour}, Sink: sink}},
			Now:  func() time.Time { return start.Add(5 * time.Hour) },
		})
	}

	goroutines := ownGoroutines()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	// The second window's commit fails, but only once the third window's
	// first request arrived (5 s at most): the lookahead must start that
	// walk while the commit is in progress.
	sum := engine(&failCommit{Sink: good, bad: hour(1), wait: third}, mem).Sync(context.Background(), context.Background())
	if sum.OK() {
		t.Fatal("sync succeeded although the second window's commit failed")
	}
	mu.Lock() // a request the walk read ahead may still be arriving
	t.Logf("summary: %s; requests %v", sum, requests)
	mu.Unlock()
	mem.AssertSize(t, 0) // the walk read ahead released its pages
	cp, err := store.Get(context.Background(), "org_1")
	if err != nil {
		t.Fatal(err)
	}
	if !cp.End.Equal(hour(1)) {
		t.Fatalf("checkpoint at %s, want %s (only the first window committed)", cp.End, hour(1))
	}
	mu.Lock()
	ahead, after := requests[hour(2).Format(time.RFC3339)], requests[hour(3).Format(time.RFC3339)]
	mu.Unlock()
	if ahead == 0 {
		t.Fatal("no request for the third window: its walk did not start while the second committed")
	}
	if after != 0 {
		t.Fatalf("%d requests for the fourth window: more than one window was read ahead", after)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ownGoroutines() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := ownGoroutines(); n > goroutines {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after the sync, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}

	sum = engine(good, nil).Sync(context.Background(), context.Background())
	if !sum.OK() {
		t.Fatalf("second sync: %s", sum)
	}
	for h := range 4 {
		w := event.Window{Org: "org_1", Start: hour(h), End: hour(h + 1)}
		var got []string
		if err := good.EventIDs(context.Background(), w, func(id string) error { got = append(got, id); return nil }); err != nil {
			t.Fatal(err)
		}
		want := sim.EventIDs("org_1", w.Start, w.End)
		slices.Sort(got)
		slices.Sort(want)
		if len(want) < 1000 || !slices.Equal(got, want) {
			t.Fatalf("window %s: %d ids, truth has %d", w.Range(), len(got), len(want))
		}
	}
}

// ownGoroutines counts the goroutines that are not net/http's (idle
// connections of the client and the test server come and go on their own).
func ownGoroutines() int {
	buf := make([]byte, 1<<20)
	n := 0
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if !strings.Contains(g, "created by net/http.") && !strings.Contains(g, "created by net/http/httptest.") {
			n++
		}
	}
	return n
}

// TestWalkBuffer: one org's walk may hold 12 decoded pages; with orgs in
// parallel the slack is shared out, never below 2.
func TestWalkBuffer(t *testing.T) {
	for _, tc := range []struct{ concurrency, want int }{{1, 12}, {2, 6}, {4, 3}, {8, 2}, {64, 2}} {
		e := New(Options{Concurrency: tc.concurrency})
		if got := e.walkBuffer(); got != tc.want {
			t.Errorf("concurrency %d: walk buffer %d, want %d", tc.concurrency, got, tc.want)
		}
	}
}
