package bigquery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/googleapi"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
	"github.com/vaultsink/vaultsink/source"
)

const project = "vaultsink-test"

func testConfig(srv *bqtest.Server, t testing.TB) Config {
	cfg := Config{Project: project, Dataset: "audit", Endpoint: srv.URL(), WithoutAuthentication: true,
		GroupDelay: -1, TempDir: t.TempDir()}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newSink(t testing.TB, srv *bqtest.Server, mod func(*Config)) *Sink {
	t.Helper()
	cfg := testConfig(srv, t)
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(context.Background(), cfg, sinks.Env{Logger: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	s.retryBase = 10 * time.Millisecond
	return s
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinks.Reader) {
		srv := bqtest.Start(t, project)
		s := newSink(t, srv, nil)
		return s, s
	})
}

// ids reads the target's ids of w through the sink's Reader.
func ids(t *testing.T, s *Sink, w source.Window) []string {
	t.Helper()
	var out []string
	if err := s.EventIDs(context.Background(), w, func(id string) error { out = append(out, id); return nil }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func sorted(in []string) []string {
	out := append([]string(nil), in...)
	sort.Strings(out)
	return out
}

func openUnit(t testing.TB, s *Sink, w source.Window, ids []string) sinks.Unit {
	t.Helper()
	ctx := context.Background()
	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ids); i += 500 {
		rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(w, ids[i:min(i+500, len(ids))]))
		err := u.Write(ctx, rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	return u
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func countRows(t *testing.T, srv *bqtest.Server, q string) int {
	t.Helper()
	rows, err := srv.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

var _ = errors.New
var _ = fmt.Sprint
var _ = os.Getenv
var _ sync.Mutex
var _ googleapi.Error
