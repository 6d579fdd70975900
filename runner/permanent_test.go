package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/config"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// permanentSink fails every commit with an error that wraps
// sinks.ErrPermanent (as a sink does for access denied or a missing
// bucket) while broken is set, and counts the windows it is asked to open.
type permanentSink struct {
	sinks.Sink
	broken atomic.Bool
	opens  atomic.Int64
}

type permanentUnit struct {
	sinks.Unit
	s *permanentSink
}

func (s *permanentSink) Open(ctx context.Context, w event.Window) (sinks.Unit, error) {
	s.opens.Add(1)
	u, err := s.Sink.Open(ctx, w)
	if err != nil {
		return nil, err
	}
	return &permanentUnit{Unit: u, s: s}, nil
}

func (u *permanentUnit) Commit(ctx context.Context) (sinks.Result, error) {
	if u.s.broken.Load() {
		return sinks.Result{}, fmt.Errorf("put object: AccessDenied: %w", sinks.ErrPermanent)
	}
	return u.Unit.Commit(ctx)
}

// TestPermanentErrorHoldsOrgBack: an org whose sink fails with a permanent
// error (one that retrying cannot fix) is not run again on every daemon
// pass: its passes fail at once, saying why and until when, without a
// request to the API or the sink, until the hold ends; then it is retried,
// and once the sink works it catches up. A transient error is retried at
// the next pass.
func TestPermanentErrorHoldsOrgBack(t *testing.T) {
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	now := start.Add(3 * time.Hour)
	clock := func() time.Time { return now }
	sim, err := vaultsim.New(vaultsim.Config{Seed: 3, Orgs: 1, From: start, To: start.Add(3 * time.Hour), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	cfg := source.Config{BaseURL: srv.URL + "/api", PageSize: 500}
	cfg.SetDefaults()
	reg := prometheus.NewRegistry()
	client, good, store := testParts(t, cfg, nil, reg)
	sink := &permanentSink{Sink: good}
	sink.broken.Store(true)
	org := source.Org{ID: "org_1", Credential: source.Credential{Token: secret.New(sim.Creds()[0].Token)}}
	e := New(Options{
		Source: client, Store: store, Registerer: reg, Settle: time.Minute, Now: clock,
		Orgs: []OrgSpec{{Resolved: config.Resolved{Org: org, Start: start, Window: time.Hour}, Sink: sink}},
	})
	ctx := context.Background()

	first := e.Sync(ctx, ctx)
	if first.OK() || !errors.Is(first.Results[0].Err, sinks.ErrPermanent) {
		t.Fatalf("first pass: %+v, want a permanent failure", first.Results[0])
	}
	opens := sink.opens.Load()

	now = now.Add(5 * time.Minute) // the next daemon tick
	second := e.Sync(ctx, ctx)
	r := second.Results[0]
	if r.Status != StatusFailed || !errors.Is(r.Err, sinks.ErrPermanent) || !strings.Contains(r.Err.Error(), "held back until") {
		t.Fatalf("second pass: %+v, want a failure that says the org is held back", r)
	}
	if n := sink.opens.Load(); n != opens {
		t.Fatalf("the held-back org opened %d more windows", n-opens)
	}

	sink.broken.Store(false)
	now = now.Add(permanentHold) // the hold has ended
	third := e.Sync(ctx, ctx)
	if !third.OK() || third.Results[0].Windows == 0 {
		t.Fatalf("after the hold: %+v, want the org caught up", third.Results[0])
	}
}
