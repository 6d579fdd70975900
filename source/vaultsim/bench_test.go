package vaultsim

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"
)

// BenchmarkServe walks a 2-hour window at limit=1000 over real loopback
// HTTP, the way a minimal client does: read the body, find next_cursor at
// its end. "warm" serves cached hours; "cold" builds every hour afresh.
func BenchmarkServe(b *testing.B) {
	for _, mode := range []string{"warm", "cold"} {
		b.Run(mode, func(b *testing.B) {
			cfg := Config{Seed: 7, Orgs: 1, From: t0.Add(-24 * time.Hour), To: t0, Rate: 40000, Now: func() time.Time { return t0 }}
			from, to := t0.Add(-6*time.Hour), t0.Add(-4*time.Hour)
			sim := Start(b, cfg)
			tok := "Bearer " + sim.Creds()[0].Token
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			var events, bytesRead int64
			buf := new(bytes.Buffer)
			b.ResetTimer()
			for range b.N {
				if mode == "cold" {
					b.StopTimer()
					sim.cache = newHourCache(sim.cfg.CacheBytes)
					b.StartTimer()
				}
				base := sim.URL + "/events/v1?from=" + ts(from) + "&to=" + ts(to) + "&limit=1000"
				u := base
				for {
					req, _ := http.NewRequest(http.MethodGet, u, nil)
					req.Header.Set("Authorization", tok)
					res, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					buf.Reset()
					if _, err := io.Copy(buf, res.Body); err != nil {
						b.Fatal(err)
					}
					res.Body.Close()
					body := buf.Bytes()
					bytesRead += int64(len(body))
					events += int64(bytes.Count(body, []byte(`{"id":`)))
					i := bytes.LastIndex(body, []byte(`"next_cursor":`))
					rest := body[i+len(`"next_cursor":`):]
					if bytes.HasPrefix(rest, []byte("null")) {
						break
					}
					u = base + "&cursor=" + string(rest[1:bytes.IndexByte(rest[1:], '"')+1])
				}
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(events)/sec, "events/s")
			b.ReportMetric(float64(bytesRead)/sec/1e6, "MB/s")
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
		})
	}
}
