package runner

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// TestClockProbeSharedByOrgs: orgs that start a pass together all wait for
// the one probe of the API's clock. Before, the first org probed while the
// others, seeing a probe under way but no answer yet, judged their windows
// by this host's clock and warned that the API sends no Date header, though
// it does.
func TestClockProbeSharedByOrgs(t *testing.T) {
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	now := start.Add(3 * time.Hour)
	sim, err := vaultsim.New(vaultsim.Config{Seed: 4, Orgs: 3, From: start, To: now, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	slow := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			// The clock probe answers late, after every org asked for the clock.
			once.Do(func() { time.Sleep(300 * time.Millisecond); close(slow) })
			<-slow
		}
		sim.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := source.Config{BaseURL: srv.URL + "/api", PageSize: 1000}
	cfg.SetDefaults()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	client, sink, store := testParts(t, cfg, log, reg)
	var specs []OrgSpec
	for _, c := range sim.Creds() {
		org := source.Org{ID: c.OrgID, Credential: source.Credential{Token: secret.New(c.Token)}}
		specs = append(specs, OrgSpec{Resolved: config.Resolved{Org: org, Start: start, Window: time.Hour}, Sink: sink})
	}
	e := New(Options{Source: client, Store: store, Registerer: reg, Settle: time.Minute, Log: log, Concurrency: 3,
		Orgs: specs, Now: func() time.Time { return now }})
	sum := e.Sync(context.Background(), context.Background())
	if !sum.OK() {
		t.Fatalf("sync: %+v", sum.Results)
	}
	if strings.Contains(logs.String(), "no Date header") {
		t.Fatalf("warned of a missing Date header the API sends:\n%s", logs.String())
	}
}
