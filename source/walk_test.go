package source_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

var (
	histFrom = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	histTo   = time.Date(2026, 6, 4, 0, 0, 0, 0, time.UTC)
	// A window of several pages: 6 hours at ~2000 events/hour.
	win = event.Window{Org: "org_1", Start: histFrom.Add(24 * time.Hour), End: histFrom.Add(30 * time.Hour)}
)

func startSim(t *testing.T, mod func(*vaultsim.Config)) *vaultsim.Running {
	t.Helper()
	cfg := vaultsim.Config{Seed: 7, Orgs: 2, From: histFrom, To: histTo, Now: func() time.Time { return histTo.Add(24 * time.Hour) }}
	if mod != nil {
		mod(&cfg)
	}
	return vaultsim.Start(t, cfg)
}

func newClient(t *testing.T, base string, mod func(*source.Config), log *slog.Logger, reg prometheus.Registerer) *source.Client {
	t.Helper()
	cfg := source.Config{BaseURL: base}
	cfg.SetDefaults()
	cfg.Retry.InitialBackoff = time.Millisecond
	cfg.Retry.MaxBackoff = 20 * time.Millisecond
	cfg.Retry.MaxAttempts = 30
	cfg.Timeout = 10 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := source.NewClient(cfg, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func orgOf(sim *vaultsim.Running, id string) source.Org {
	for _, c := range sim.Creds() {
		if c.OrgID == id {
			return source.Org{ID: id, Credential: source.Credential{Token: secret.New(c.Token)}}
		}
	}
	panic("no org " + id)
}

type walked struct {
	ids   []string
	ts    []int64
	stats source.WalkStats
	quar  []event.Quarantined
}

func walk(t *testing.T, c *source.Client, org source.Org, w event.Window) (walked, error) {
	t.Helper()
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	var out walked
	st, err := c.Walk(context.Background(), org, w, mem, source.WalkOptions{}, func(p source.Page) error {
		out.quar = append(out.quar, p.Quarantined...)
		if p.Rec == nil {
			return nil
		}
		defer p.Rec.Release()
		ids := p.Rec.Column(event.ColEventID).(*array.String)
		ts := p.Rec.Column(event.ColTimestamp).(*array.Timestamp)
		for i := 0; i < ids.Len(); i++ {
			out.ids = append(out.ids, ids.Value(i))
			out.ts = append(out.ts, int64(ts.Value(i)))
		}
		return nil
	})
	out.stats = st
	return out, err
}

// TestWalkProfiles: every response shape yields exactly the simulator's
// truth for a multi-page window, in order, once.
func TestWalkProfiles(t *testing.T) {
	for _, tc := range []struct {
		profile vaultsim.Profile
		mod     func(*source.Config)
	}{
		{vaultsim.ProfileDefault, nil},
		{vaultsim.ProfileDefault, func(c *source.Config) { c.Pagination = "cursor" }},
		{vaultsim.ProfilePage, nil},
		{vaultsim.ProfilePage, func(c *source.Config) { c.Pagination = "page" }},
		{vaultsim.ProfileLink, nil},
		{vaultsim.ProfileCamel, nil},
		{vaultsim.ProfileDates, func(c *source.Config) { c.TimeFormat = "date"; c.DateToInclusive = true }},
	} {
		name := string(tc.profile)
		if tc.mod != nil {
			name += "-explicit"
		}
		t.Run(name, func(t *testing.T) {
			sim := startSim(t, func(c *vaultsim.Config) { c.Profile = tc.profile })
			c := newClient(t, sim.URL, func(c *source.Config) {
				c.PageSize = 500
				if tc.mod != nil {
					tc.mod(c)
				}
			}, nil, nil)
			got, err := walk(t, c, orgOf(sim, "org_1"), win)
			if err != nil {
				t.Fatal(err)
			}
			want := sim.EventIDs("org_1", win.Start, win.End)
			if got.stats.Pages < 3 {
				t.Fatalf("only %d pages: the window should span several", got.stats.Pages)
			}
			if len(got.quar) != 0 {
				t.Fatalf("quarantined %d records: %+v", len(got.quar), got.quar[0])
			}
			if tc.profile == vaultsim.ProfileCamel {
				// No ids in this profile: ids are stable hashes; check the count,
				// uniqueness and the timestamps against the truth.
				if len(got.ids) != len(want) {
					t.Fatalf("got %d rows, truth has %d", len(got.ids), len(want))
				}
				uniq := slices.Clone(got.ids)
				slices.Sort(uniq)
				if len(slices.Compact(uniq)) != len(want) {
					t.Fatal("derived ids are not unique")
				}
				var wantTS []int64
				for _, e := range sim.Events("org_1", win.Start, win.End) {
					wantTS = append(wantTS, e.Timestamp.UnixMicro())
				}
				if !slices.Equal(got.ts, wantTS) {
					t.Fatal("timestamps differ from the truth")
				}
				// The same walk again derives the same ids.
				again, err := walk(t, c, orgOf(sim, "org_1"), win)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(again.ids, got.ids) {
					t.Fatal("derived ids are not stable across walks")
				}
				return
			}
			if !slices.Equal(got.ids, want) {
				t.Fatalf("ids differ from truth: got %d, want %d", len(got.ids), len(want))
			}
			if tc.profile == vaultsim.ProfileDates && got.stats.Outside == 0 {
				t.Fatal("date mode should skip the events of the day outside the window")
			}
		})
	}
}

// TestWalkFaults: with transient faults and duplicates turned on together,
// the walk still yields exactly the truth.
func TestWalkFaults(t *testing.T) {
	faults, err := vaultsim.ParseFaults("429=0.08,500=0.08,502=0.05,503=0.05,slow=0.03,cut=0.08,malformed=0.1,dup=0.2")
	if err != nil {
		t.Fatal(err)
	}
	sim := startSim(t, func(c *vaultsim.Config) { c.Faults = faults; c.SlowDelay = 50 * time.Millisecond })
	reg := prometheus.NewRegistry()
	c := newClient(t, sim.URL, func(c *source.Config) { c.PageSize = 200 }, nil, reg)
	got, err := walk(t, c, orgOf(sim, "org_1"), win)
	if err != nil {
		t.Fatal(err)
	}
	want := sim.EventIDs("org_1", win.Start, win.End)
	if !slices.Equal(got.ids, want) {
		t.Fatalf("ids differ from truth: got %d, want %d", len(got.ids), len(want))
	}
	st := sim.Requests()
	for _, k := range []string{"429", "500", "cut", "malformed", "dup"} {
		if st.Faults[k] == 0 {
			t.Errorf("fault %s never fired: the test proves nothing about it", k)
		}
	}
	if got.stats.Duplicates == 0 || got.stats.Retries == 0 {
		t.Fatalf("expected duplicates and retries, got %+v", got.stats)
	}
	if n := testutil.ToFloat64(c.Metrics().Retries.WithLabelValues("org_1", "429")); n == 0 {
		t.Error("429 retries not counted in metrics")
	}
}

func TestWalkOffHostLink(t *testing.T) {
	// A listener of our own stands at the off-host address: it must never
	// see a request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	faults, _ := vaultsim.ParseFaults("offhost=1")
	sim := startSim(t, func(c *vaultsim.Config) {
		c.Profile = vaultsim.ProfileLink
		c.Faults = faults
		c.OffHost = ln.Addr().String()
	})
	c := newClient(t, sim.URL, func(c *source.Config) { c.PageSize = 200 }, nil, nil)
	_, err = walk(t, c, orgOf(sim, "org_1"), win)
	if !errors.Is(err, source.ErrOffHost) {
		t.Fatalf("want ErrOffHost, got %v", err)
	}
	if source.Retryable(err) {
		t.Fatal("off-host must not be retried")
	}
	if hits.Load() != 0 || sim.Requests().OffHost != 0 {
		t.Fatalf("a request reached the other host")
	}
}

func TestWalkAuthErrors(t *testing.T) {
	faults, _ := vaultsim.ParseFaults("revoke-after=3")
	sim := startSim(t, func(c *vaultsim.Config) { c.Faults = faults })
	c := newClient(t, sim.URL, func(c *source.Config) { c.PageSize = 200 }, nil, nil)
	_, err := walk(t, c, orgOf(sim, "org_1"), win)
	if !errors.Is(err, source.ErrAuth) || !strings.Contains(err.Error(), "org_1") {
		t.Fatalf("revoked token: want an auth error naming the org, got %v", err)
	}
	if !strings.Contains(err.Error(), "401") {
		t.Fatalf("error should carry the status: %v", err)
	}

	scim := source.Org{ID: "org_2", Credential: source.Credential{Token: secret.New(sim.Creds()[1].SCIMToken)}}
	_, err = walk(t, c, scim, win)
	if !errors.Is(err, source.ErrAuth) || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "events scope") {
		t.Fatalf("scim token: want a 403 auth error with a hint, got %v", err)
	}

	bad := source.Org{ID: "org_2", Credential: source.Credential{Token: secret.New("vt_nope")}}
	_, err = walk(t, c, bad, win)
	if !errors.Is(err, source.ErrAuth) {
		t.Fatalf("bad token: want auth error, got %v", err)
	}
}

func TestWalkJWT(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL, nil, nil, nil)
	org := source.Org{ID: "org_2", Credential: source.Credential{Token: secret.New(sim.Creds()[1].JWT)}}
	got, err := walk(t, c, org, win)
	if err != nil {
		t.Fatal(err)
	}
	if want := sim.EventIDs("org_2", win.Start, win.End); !slices.Equal(got.ids, want) {
		t.Fatalf("JWT walk differs from truth")
	}
}

// TestTokenNeverPrinted walks with faults at debug level, then greps the
// logs, the error and the metrics for the token.
func TestTokenNeverPrinted(t *testing.T) {
	faults, _ := vaultsim.ParseFaults("429=0.2,500=0.1,cut=0.1,malformed=0.1,revoke-after=12")
	sim := startSim(t, func(c *vaultsim.Config) { c.Faults = faults })
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	c := newClient(t, sim.URL, func(c *source.Config) { c.PageSize = 100 }, log, reg)
	org := orgOf(sim, "org_1")
	_, err := walk(t, c, org, win)
	if err == nil {
		t.Fatal("the token was revoked part-way: the walk must fail")
	}
	mfs, _ := reg.Gather()
	var metrics bytes.Buffer
	for _, mf := range mfs {
		metrics.WriteString(mf.String())
	}
	token := sim.Creds()[0].Token
	for name, s := range map[string]string{"logs": logs.String(), "error": err.Error(), "metrics": metrics.String()} {
		if s == "" {
			t.Fatalf("%s are empty: nothing was checked", name)
		}
		if strings.Contains(s, token) {
			t.Fatalf("token leaked into %s", name)
		}
	}
	if !strings.Contains(logs.String(), "retrying page") {
		t.Fatal("debug logs should show the retries")
	}
}

func TestWalkRequestError(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL, func(c *source.Config) { c.PageSize = 5000 }, nil, nil) // over the server's max
	_, err := walk(t, c, orgOf(sim, "org_1"), win)
	if !errors.Is(err, source.ErrRequest) || !strings.Contains(err.Error(), "400") {
		t.Fatalf("want a 400 request error quoting the server, got %v", err)
	}
}

func TestWalkRateLimit(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL, func(c *source.Config) { c.PageSize = 100; c.RateLimit = 20 }, nil, nil)
	began := time.Now()
	got, err := walk(t, c, orgOf(sim, "org_1"), win)
	if err != nil {
		t.Fatal(err)
	}
	// burst 20, then 20/s: pages beyond the burst cannot come faster.
	minDur := time.Duration(float64(got.stats.Pages-20) / 20 * float64(time.Second))
	if d := time.Since(began); got.stats.Pages > 40 && d < minDur*9/10 {
		t.Fatalf("%d pages in %s: faster than 20 requests/s", got.stats.Pages, d)
	}
}

func TestMaxPageBytes(t *testing.T) {
	sim := startSim(t, nil)
	c := newClient(t, sim.URL, func(c *source.Config) { c.MaxPageBytes = 4096 }, nil, nil)
	_, err := walk(t, c, orgOf(sim, "org_1"), win)
	if !errors.Is(err, source.ErrRequest) || !strings.Contains(err.Error(), "max_page_bytes") {
		t.Fatalf("want a clear max_page_bytes error, got %v", err)
	}
}
