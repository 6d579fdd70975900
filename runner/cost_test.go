package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/config"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// countingStore counts the checkpoint store's calls by org.
type countingStore struct {
	checkpoint.Store
	mu         sync.Mutex
	gets, puts map[string]int
}

func (c *countingStore) Get(ctx context.Context, org string) (checkpoint.Checkpoint, error) {
	c.mu.Lock()
	c.gets[org]++
	c.mu.Unlock()
	return c.Store.Get(ctx, org)
}

func (c *countingStore) Put(ctx context.Context, cp checkpoint.Checkpoint) (string, error) {
	c.mu.Lock()
	c.puts[cp.Org]++
	c.mu.Unlock()
	return c.Store.Put(ctx, cp)
}

// noDate drops the Date header Go's server would add.
type noDate struct{ http.ResponseWriter }

func (w noDate) WriteHeader(code int) {
	w.Header()["Date"] = nil
	w.ResponseWriter.WriteHeader(code)
}

func (w noDate) Write(b []byte) (int, error) {
	if w.Header()["Date"] != nil {
		w.Header()["Date"] = nil
	}
	return w.ResponseWriter.Write(b)
}

// TestDayOfPasses: a simulated day of daemon passes on a 5-minute schedule
// (288 ticks), 1-hour windows, lookback 1, two replicas on one store.
// Counts the store's requests per org: the figures of the README's sizing
// notes. An idle pass reads nothing for most orgs; a window costs a few
// reads and writes, by whichever replica takes the lease; the other reads
// and yields, writing nothing.
func TestDayOfPasses(t *testing.T) {
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(day.Add(-time.Hour).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	sim, err := vaultsim.New(vaultsim.Config{Seed: 12, Orgs: 3, From: day.Add(-2 * time.Hour), To: day.Add(25 * time.Hour), Rate: 50, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	// No Date headers: the engines judge windows by the injected clock
	// (an offset measured against the real one would not move with it).
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sim.Handler().ServeHTTP(noDate{w}, r)
	}))
	t.Cleanup(api.Close)
	cfg := source.Config{BaseURL: api.URL + "/api", PageSize: 100}
	cfg.SetDefaults()
	client, sink, file := testParts(t, cfg, nil, prometheus.NewRegistry())
	store := &countingStore{Store: file, gets: map[string]int{}, puts: map[string]int{}}
	var specs []OrgSpec
	for _, c := range sim.Creds() {
		specs = append(specs, OrgSpec{Resolved: config.Resolved{Org: source.Org{ID: c.OrgID, Credential: source.Credential{Token: secret.New(c.Token)}}, Start: day.Add(-time.Hour), Window: time.Hour, Lookback: 1}, Sink: sink})
	}
	replicas := []*Engine{}
	for i := range 2 {
		replicas = append(replicas, New(Options{Source: client, Store: store, Orgs: specs, Settle: 5 * time.Minute,
			Concurrency: 2, Owner: OwnerID([]string{"a", "b"}[i]), LeaseTTL: 10 * time.Minute,
			Registerer: prometheus.NewRegistry(), Now: now}))
	}
	ctx := context.Background()
	windows := 0
	for tick := day; tick.Before(day.Add(24 * time.Hour)); tick = tick.Add(5 * time.Minute) {
		clock.Store(tick.UnixNano())
		for _, e := range replicas {
			sum := e.pass(ctx, ctx, 0, false)
			if !sum.OK() {
				t.Fatalf("pass at %s: %s", tick.Format(time.TimeOnly), sum)
			}
			windows += sum.windows()
		}
	}
	if windows < 3*24 {
		t.Fatalf("%d windows committed in the day, want at least %d", windows, 3*24)
	}
	for _, s := range specs {
		org := s.Org.ID
		cp, err := file.Get(ctx, org)
		if err != nil {
			t.Fatal(err)
		}
		if want := day.Add(23 * time.Hour); !cp.End.Equal(want) {
			t.Errorf("%s: checkpoint at %s, want %s", org, cp.End, want)
		}
		gets, puts := store.gets[org], store.puts[org]
		t.Logf("%s: a day of 288 ticks on two replicas: %d checkpoint reads, %d writes", org, gets, puts)
		// Per window: the lease taken, the window recorded, the lease
		// released (the lookback window is recorded with the fresh one).
		if puts > 3*25 {
			t.Errorf("%s: %d checkpoint writes in a day of 24 windows, want at most %d", org, puts, 3*25)
		}
		// Reads: each replica looks at an idle org once per idleRecheck
		// and once more when a window closes; a window adds the read
		// before its commit.
		if limit := 2 * (24*int(time.Hour/idleRecheck) + 2*25); gets > limit {
			t.Errorf("%s: %d checkpoint reads in a day, want at most %d", org, gets, limit)
		}
	}
}
