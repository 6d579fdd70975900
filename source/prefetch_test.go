package source_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// TestPrefetchUsed: against the simulator's cursor and Link profiles, every
// page after the first was read ahead and used, no request was wasted, and
// the rows are exactly the truth.
func TestPrefetchUsed(t *testing.T) {
	for _, profile := range []vaultsim.Profile{vaultsim.ProfileDefault, vaultsim.ProfileLink} {
		t.Run(string(profile), func(t *testing.T) {
			sim := startSim(t, func(c *vaultsim.Config) { c.Profile = profile })
			reg := prometheus.NewRegistry()
			c := newClient(t, sim.URL, func(c *source.Config) { c.PageSize = 300 }, nil, reg)
			before := sim.Requests().Total
			got, err := walk(t, c, orgOf(sim, "org_1"), win)
			if err != nil {
				t.Fatal(err)
			}
			if want := sim.EventIDs("org_1", win.Start, win.End); !slices.Equal(got.ids, want) {
				t.Fatalf("ids differ from truth: got %d, want %d", len(got.ids), len(want))
			}
			pages := got.stats.Pages
			if pages < 5 {
				t.Fatalf("only %d pages", pages)
			}
			used := testutil.ToFloat64(c.Metrics().Prefetch.WithLabelValues("org_1", "used"))
			discarded := testutil.ToFloat64(c.Metrics().Prefetch.WithLabelValues("org_1", "discarded"))
			if int(used) != pages-1 || discarded != 0 {
				t.Fatalf("prefetch used %v discarded %v over %d pages; want %d used, 0 discarded", used, discarded, pages, pages-1)
			}
			if n := sim.Requests().Total - before; n != int64(pages) {
				t.Fatalf("%d requests for %d pages: read-ahead wasted requests", n, pages)
			}
		})
	}
}

// cursorFirstAPI serves pages of 3 events with the cursor BEFORE the events
// and the last event carrying a nested "next_cursor" key in its detail, so
// the read-ahead guess (the last such key in the body) is always wrong.
type cursorFirstAPI struct {
	pages    int
	requests atomic.Int64
	token    string
}

func (a *cursorFirstAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
		return
	}
	page := 0
	if c := r.URL.Query().Get("cursor"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil {
			http.Error(w, `{"error":{"code":"bad_cursor"}}`, http.StatusBadRequest)
			return
		}
		page = n
	}
	type event struct {
		ID        string         `json:"id"`
		Timestamp string         `json:"timestamp"`
		Action    string         `json:"action"`
		Detail    map[string]any `json:"detail"`
	}
	var next any
	if page+1 < a.pages {
		next = strconv.Itoa(page + 1)
	}
	var evs []event
	for i := range 3 {
		ts := win.Start.Add(time.Duration(page*3+i) * time.Second)
		evs = append(evs, event{ID: fmt.Sprintf("evt_%03d_%d", page, i), Timestamp: ts.Format(time.RFC3339Nano), Action: "LOGIN",
			Detail: map[string]any{"next_cursor": "bogus-" + strconv.Itoa(page)}})
	}
	// Field order matters here: encoding/json keeps struct order.
	body, _ := json.Marshal(struct {
		NextCursor any     `json:"next_cursor"`
		Data       []event `json:"data"`
	}{next, evs})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// TestPrefetchWrongGuess: when the read-ahead guesses a wrong next URL the
// prefetched answer is dropped, the right page is fetched, and the rows are
// exactly those of the API, once each, in order.
func TestPrefetchWrongGuess(t *testing.T) {
	api := &cursorFirstAPI{pages: 5, token: "tok"}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	reg := prometheus.NewRegistry()
	c := newClient(t, srv.URL, func(c *source.Config) { c.Pagination = "cursor" }, nil, reg)
	org := source.Org{ID: "org_1", Credential: source.Credential{Token: secret.New("tok")}}
	got, err := walk(t, c, org, win)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for p := range api.pages {
		for i := range 3 {
			want = append(want, fmt.Sprintf("evt_%03d_%d", p, i))
		}
	}
	if !slices.Equal(got.ids, want) {
		t.Fatalf("ids %v, want %v", got.ids, want)
	}
	used := testutil.ToFloat64(c.Metrics().Prefetch.WithLabelValues("org_1", "used"))
	discarded := testutil.ToFloat64(c.Metrics().Prefetch.WithLabelValues("org_1", "discarded"))
	if used != 0 || discarded != float64(api.pages) {
		t.Fatalf("prefetch used %v discarded %v; want 0 used, %d discarded (every guess is wrong)", used, discarded, api.pages)
	}
}
