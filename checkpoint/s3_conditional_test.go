package checkpoint_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/checkpoint/checkpointtest"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// getLog records the GETs of checkpoint objects that pass a proxy in front
// of an S3 server: whether each was conditional and what it was answered.
type getLog struct {
	mu   sync.Mutex
	gets []getSeen
}

type getSeen struct {
	conditional bool
	status      int
}

func (l *getLog) take() []getSeen {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.gets
	l.gets = nil
	return out
}

// recordingProxy starts a proxy in front of srv that keeps the client's
// Host header (SigV4 signs it) and logs every GET of a .json object.
func recordingProxy(t *testing.T, srv *s3test.Server) (*s3test.Server, *getLog) {
	t.Helper()
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	log := &getLog{}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			r := resp.Request
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ".json") {
				log.mu.Lock()
				log.gets = append(log.gets, getSeen{conditional: r.Header.Get("If-None-Match") != "", status: resp.StatusCode})
				log.mu.Unlock()
			}
			return nil
		},
	}
	p := httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return srv.WithEndpoint(p.URL), log
}

// TestS3ConditionalGet: a Get of a document the store has seen is a
// conditional GET, answered 304 by the server while the object is
// unchanged, and still returns the current document whenever another
// writer changed or removed it.
func TestS3ConditionalGet(t *testing.T) {
	for name, start := range map[string]func(testing.TB) *s3test.Server{"versitygw": s3test.Versity, "gofakes3": s3test.GoFakeS3} {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			proxied, log := recordingProxy(t, srv)
			a := newS3Store(t, proxied, "state") // the store under test, behind the proxy
			b := newS3Store(t, srv, "state")     // another writer
			ctx := context.Background()
			expect := func(step string, want ...getSeen) {
				t.Helper()
				got := log.take()
				if len(got) != len(want) {
					t.Fatalf("%s: GETs %+v, want %+v", step, got, want)
				}
				for i := range got {
					if got[i] != want[i] {
						t.Fatalf("%s: GETs %+v, want %+v", step, got, want)
					}
				}
			}
			plain200 := getSeen{conditional: false, status: 200}
			cond200 := getSeen{conditional: true, status: 200}
			cond304 := getSeen{conditional: true, status: 304}

			// After its own Put, the store's Gets are conditional and 304.
			want := checkpointtest.Full("org_1")
			v1, err := a.Put(ctx, want)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				got, err := a.Get(ctx, "org_1")
				if err != nil {
					t.Fatal(err)
				}
				if err := checkpointtest.Same(got, want); err != nil || got.Version != v1 {
					t.Fatalf("Get #%d answered from a 304: %v, version %q want %q", i, err, got.Version, v1)
				}
				// What Get returned is the caller's: changing it changes
				// nothing the next Get returns.
				got.Lease.Owner = "changed by the caller"
				got.LastError = "changed"
			}
			expect("Gets of an unchanged object", cond304, cond304, cond304)

			// Another writer moves it: the next Get returns the new document.
			cur, err := b.Get(ctx, "org_1")
			if err != nil {
				t.Fatal(err)
			}
			cur.Windows = 99
			v2, err := b.Put(ctx, cur)
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.Get(ctx, "org_1")
			if err != nil || got.Windows != 99 || got.Version != v2 {
				t.Fatalf("Get after another writer's Put: windows %d version %q (want 99, %q), %v", got.Windows, got.Version, v2, err)
			}
			if _, err := a.Get(ctx, "org_1"); err != nil {
				t.Fatal(err)
			}
			expect("Gets after another writer's Put", cond200, cond304)

			// A Put from the version the 304 answered works (it is current).
			got.Windows = 100
			if _, err := a.Put(ctx, got); err != nil {
				t.Fatalf("Put from a 304's document: %v", err)
			}

			// Removed by the other writer: not found, then a plain GET.
			if err := b.Delete(ctx, "org_1"); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := a.Get(ctx, "org_1"); !errors.Is(err, checkpoint.ErrNotFound) {
					t.Fatalf("Get after another writer's Delete = %v, want ErrNotFound", err)
				}
			}
			if got := log.take(); len(got) != 2 || !got[0].conditional || got[1].conditional {
				t.Fatalf("Gets after a Delete: %+v, want one conditional then one plain", got)
			}

			// A store that has not seen the org reads it whole, once.
			if _, err := b.Put(ctx, checkpointtest.Full("org_1")); err != nil {
				t.Fatal(err)
			}
			fresh := newS3Store(t, proxied, "state")
			for range 2 {
				if _, err := fresh.Get(ctx, "org_1"); err != nil {
					t.Fatal(err)
				}
			}
			expect("Gets of a fresh store", plain200, cond304)
		})
	}
}
