package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
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
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// archive is a simulator, a local sink and a file store, and engines over
// them with the window size a test chooses.
type archive struct {
	t     *testing.T
	sim   *vaultsim.Running
	src   *source.Client
	sink  *local.Sink
	store *checkpoint.FileStore
	org   source.Org
	start time.Time
	now   time.Time // the API's and the engine's clock; tests move it
}

func newArchive(t *testing.T, cfg vaultsim.Config, start time.Time, hours int) *archive {
	t.Helper()
	a := &archive{t: t, start: start, now: start.Add(time.Duration(hours)*time.Hour + 10*time.Minute)}
	cfg.Orgs, cfg.From, cfg.To = 1, start, start.Add(time.Duration(hours)*time.Hour)
	cfg.Now = func() time.Time { return a.now }
	sim := vaultsim.Start(t, cfg)
	scfg := source.Config{BaseURL: sim.URL, PageSize: 500}
	scfg.SetDefaults()
	scfg.Retry.InitialBackoff, scfg.Retry.MaxBackoff = time.Millisecond, 10*time.Millisecond
	client, sink, store := testParts(t, scfg, nil, prometheus.NewRegistry())
	a.sim, a.src, a.sink, a.store = sim, client, sink, store
	a.org = source.Org{ID: "org_1", Credential: source.Credential{Token: secret.New(sim.Creds()[0].Token)}}
	return a
}

func (a *archive) engine(window time.Duration, lookback int, sink sinks.Sink) *Engine {
	if sink == nil {
		sink = a.sink
	}
	return New(Options{Source: a.src, Store: a.store, Registerer: prometheus.NewRegistry(), Settle: 5 * time.Minute,
		Owner: "test", Orgs: []OrgSpec{{Resolved: config.Resolved{Org: a.org, Start: a.start, Window: window, Lookback: lookback}, Sink: sink}},
		Now: func() time.Time { return a.now }})
}

func (a *archive) sync(window time.Duration, lookback int) Summary {
	a.t.Helper()
	return a.engine(window, lookback, nil).Sync(context.Background(), context.Background())
}

// exact checks that the sink holds every event of the truth once, in units
// of size window and no other, each row inside its unit.
func (a *archive) exact(window time.Duration) {
	a.t.Helper()
	ctx := context.Background()
	units, err := a.sink.Units(ctx, "org_1", time.Time{}, a.now.Add(24*time.Hour))
	if err != nil {
		a.t.Fatal(err)
	}
	var got []string
	for _, u := range units {
		if u.Hidden {
			a.t.Fatalf("hidden file %s left in the tree", u.Key)
		}
		if d := u.Window.End.Sub(u.Window.Start); d != window {
			a.t.Fatalf("unit %s covers %s, want %s windows only", u.Key, d, window)
		}
		err := a.sink.UnitRows(ctx, u, func(id string, ts time.Time) error {
			if !u.Window.Contains(ts) {
				return fmt.Errorf("row %s at %s outside unit %s", id, ts, u.Window.Range())
			}
			got = append(got, id)
			return nil
		})
		if err != nil {
			a.t.Fatal(err)
		}
	}
	want := a.sim.EventIDs("org_1", a.start, a.now)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		a.t.Fatalf("the sink holds %d rows (%d distinct), the truth %d events", len(got), len(slices.Compact(slices.Clone(got))), len(want))
	}
}

// TestRewindow: a changed window is refused before anything is written;
// rewindow rewrites the units into the new size, each event once; syncs go
// on in the new size; and back again.
func TestRewindow(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	a := newArchive(t, vaultsim.Config{Seed: 21, Rate: 300}, start, 30)
	if sum := a.sync(time.Hour, 1); !sum.OK() {
		t.Fatalf("sync: %s", sum)
	}
	a.exact(time.Hour)

	sum := a.sync(24*time.Hour, 1)
	if sum.OK() || !errors.Is(sum.Results[0].Err, ErrCheckpoint) {
		t.Fatalf("sync with window 24h over 1h units: %s, want a refusal", sum)
	}
	for _, s := range []string{"1h", "24h", "vaultsink rewindow"} {
		if !strings.Contains(sum.Results[0].Err.Error(), s) {
			t.Fatalf("refusal %q does not name %q", sum.Results[0].Err, s)
		}
	}
	a.exact(time.Hour) // nothing was written

	res, err := a.engine(24*time.Hour, 1, nil).Rewindow(context.Background(), OrgSpec{Resolved: config.Resolved{Org: a.org, Start: start, Window: 24 * time.Hour}, Sink: a.sink})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rewindow: %+v", res)
	if !res.End.Equal(start.Add(24 * time.Hour)) {
		t.Fatalf("checkpoint after rewindow %s, want the last whole day", res.End)
	}
	a.exact(24 * time.Hour)
	// The second day is partial (6 hours) and was rewritten into a 24h
	// unit; a sync re-pulls it and adds to it once it closes.
	a.now = start.Add(48*time.Hour + 10*time.Minute)
	if sum := a.sync(24*time.Hour, 1); !sum.OK() {
		t.Fatalf("sync with 24h: %s", sum)
	}
	a.exact(24 * time.Hour)

	// And back to 15 minutes, through a span of 24h units.
	if _, err := a.engine(15*time.Minute, 1, nil).Rewindow(context.Background(), OrgSpec{Resolved: config.Resolved{Org: a.org, Start: start, Window: 15 * time.Minute}, Sink: a.sink}); err != nil {
		t.Fatal(err)
	}
	a.exact(15 * time.Minute)
	if sum := a.sync(15*time.Minute, 2); !sum.OK() {
		t.Fatalf("sync with 15m: %s", sum)
	}
	a.exact(15 * time.Minute)
}

// flakyRewriter fails the n-th Remove or Publish, as a crash would stop a
// rewrite there.
type flakyRewriter struct {
	*local.Sink
	calls, failAt atomic.Int64
}

func (f *flakyRewriter) step() error {
	if f.calls.Add(1) == f.failAt.Load() {
		return errors.New("injected crash")
	}
	return nil
}

func (f *flakyRewriter) Remove(ctx context.Context, u sinks.UnitInfo) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.Sink.Remove(ctx, u)
}

func (f *flakyRewriter) Publish(ctx context.Context, w event.Window) error {
	if err := f.step(); err != nil {
		return err
	}
	return f.Sink.Publish(ctx, w)
}

// TestRewindowCrashSafe: a rewrite stopped after any of its removals or
// publications loses nothing and shows nothing twice; syncs refuse the org
// until the rewrite is run again, which finishes it.
func TestRewindowCrashSafe(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, failAt := range []int64{1, 5, 24, 25} {
		t.Run(fmt.Sprint(failAt), func(t *testing.T) {
			a := newArchive(t, vaultsim.Config{Seed: 22, Rate: 200}, start, 24)
			if sum := a.sync(time.Hour, 0); !sum.OK() {
				t.Fatalf("sync: %s", sum)
			}
			f := &flakyRewriter{Sink: a.sink}
			f.failAt.Store(failAt)
			spec := OrgSpec{Resolved: config.Resolved{Org: a.org, Start: start, Window: 24 * time.Hour}, Sink: f}
			if _, err := a.engine(24*time.Hour, 0, f).Rewindow(context.Background(), spec); err == nil {
				t.Fatalf("the rewrite did not stop at step %d", failAt)
			}
			if sum := a.sync(24*time.Hour, 0); sum.OK() || !strings.Contains(sum.Results[0].Err.Error(), "rewindow") {
				t.Fatalf("sync during an unfinished rewindow: %s", sum)
			}
			if _, err := a.engine(24*time.Hour, 0, f).Rewindow(context.Background(), spec); err != nil {
				t.Fatal(err)
			}
			a.exact(24 * time.Hour)
		})
	}
}
