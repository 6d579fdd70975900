package source_test

import (
	"context"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// BenchmarkWalk walks a 6-hour window (~12k events per org at the default
// rate, 1,000-event pages) from the in-process simulator over loopback HTTP:
// fetch, decode into Arrow and dedup, end to end. The simulator's hours are
// warm after the first iteration, so this measures the client.
func BenchmarkWalk(b *testing.B) {
	sim := vaultsim.Start(b, vaultsim.Config{Seed: 3, Orgs: 1, From: histFrom, To: histTo, Rate: 20000,
		Now: func() time.Time { return histTo.Add(time.Hour) }})
	cfg := source.Config{BaseURL: sim.URL}
	cfg.SetDefaults()
	c, err := source.NewClient(cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	org := orgOf(sim, "org_1")
	w := event.Window{Org: "org_1", Start: histFrom.Add(24 * time.Hour), End: histFrom.Add(30 * time.Hour)}
	mem := memory.NewGoAllocator()
	var rows int64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		st, err := c.Walk(context.Background(), org, w, mem, source.WalkOptions{}, func(p source.Page) error {
			if p.Rec != nil {
				p.Rec.Release()
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		rows += int64(st.Rows)
	}
	b.StopTimer()
	body := testutil.ToFloat64(c.Metrics().Bytes.WithLabelValues("org_1"))
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(body/1e6/b.Elapsed().Seconds(), "MB/s")
}
