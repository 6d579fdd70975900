package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/source"
)

// pageSet is a sample of real simulator pages: the very bytes the
// end-to-end run decodes, so the json.Valid floor and the stage figures
// are measured over the same input.
type pageSet struct {
	bodies [][]byte
	events int
	bytes  int64
	w      event.Window
}

// fetchPages GETs up to maxPages cursor pages of window w from a running
// simulator.
func fetchPages(base, token string, w event.Window, maxPages int) (pageSet, error) {
	ps := pageSet{w: w}
	cursor := ""
	for len(ps.bodies) < maxPages {
		q := url.Values{"from": {w.Start.Format(time.RFC3339)}, "to": {w.End.Format(time.RFC3339)}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		req, _ := http.NewRequest(http.MethodGet, base+"/events/v1?"+q.Encode(), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ps, fmt.Errorf("fetch sample page: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return ps, fmt.Errorf("fetch sample page: status %d: %v", resp.StatusCode, err)
		}
		var env struct {
			Data       []json.RawMessage `json:"data"`
			NextCursor *string           `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			return ps, fmt.Errorf("sample page: %w", err)
		}
		ps.bodies = append(ps.bodies, body)
		ps.events += len(env.Data)
		ps.bytes += int64(len(body))
		if env.NextCursor == nil || *env.NextCursor == "" {
			break
		}
		cursor = *env.NextCursor
	}
	if ps.events == 0 {
		return ps, fmt.Errorf("sample window %s holds no events", w)
	}
	return ps, nil
}

// cost is one measured stage: CPU and wall time per pass over the sample.
type cost struct {
	Passes  int     `json:"passes"`
	CPUSec  float64 `json:"cpu_seconds_per_pass"`
	WallSec float64 `json:"wall_seconds_per_pass"`
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs pass on one core (GOMAXPROCS=1) until it has used at least
// minCPU of CPU time, after one warm-up pass. Throughput per CPU-second is
// "per core" and is far less disturbed by other load than wall time.
func measure(minCPU time.Duration, pass func() error) (cost, error) {
	return measureOn(1, minCPU, pass)
}

// measureOn is measure with GOMAXPROCS=procs.
func measureOn(procs int, minCPU time.Duration, pass func() error) (cost, error) {
	prev := runtime.GOMAXPROCS(procs)
	defer runtime.GOMAXPROCS(prev)
	if err := pass(); err != nil {
		return cost{}, err
	}
	runtime.GC()
	c0, t0 := cpuTime(), time.Now()
	n := 0
	for n < 3 || cpuTime()-c0 < minCPU {
		if err := pass(); err != nil {
			return cost{}, err
		}
		n++
	}
	cpu, wall := cpuTime()-c0, time.Since(t0)
	return cost{Passes: n, CPUSec: cpu.Seconds() / float64(n), WallSec: wall.Seconds() / float64(n)}, nil
}

// stageResults are the per-core figures of the decode and encode stages.
type stageResults struct {
	SampleEvents int   `json:"sample_events"`
	SampleBytes  int64 `json:"sample_json_bytes"`
	Valid        cost  `json:"json_valid"`
	Decode       cost  `json:"decode"`
	Encode       cost  `json:"encode"`
	// EncodeAll is the encode stage with GOMAXPROCS and encode_workers =
	// every core: the columns of a row group are encoded in parallel
	// (pqenc; off by default).
	EncodeAll      cost    `json:"encode_all_cores"`
	EncodeAllProcs int     `json:"encode_all_cores_procs"`
	EncodedBytes   int64   `json:"encoded_bytes"`
	BytesPerEvent  float64 `json:"encoded_bytes_per_event"`
	DecodeVsValid  float64 `json:"decode_vs_json_valid"`
	EncodeVsValid  float64 `json:"encode_vs_json_valid"`
}

// profileDir, when set (-cpuprofile), receives a CPU profile per stage.
var profileDir string

func startProfile(stage string) func() {
	if profileDir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(profileDir, stage+".pprof"))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

type discardCounter struct{ n int64 }

func (d *discardCounter) Write(p []byte) (int, error) { d.n += int64(len(p)); return len(p), nil }

func measureStages(ps pageSet, minCPU time.Duration) (stageResults, error) {
	r := stageResults{SampleEvents: ps.events, SampleBytes: ps.bytes}
	var err error
	r.Valid, err = measure(minCPU, func() error {
		for _, b := range ps.bodies {
			if !json.Valid(b) {
				return fmt.Errorf("json.Valid: sample page is not valid JSON")
			}
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	mem := memory.NewGoAllocator()
	dec := source.NewDecoder(mem, source.DecodeOptions{Org: ps.w.Org})
	ingested := time.Now()
	stopProfile := startProfile("decode")
	r.Decode, err = measure(minCPU, func() error {
		dec.Reset(ps.w, event.Known{})
		for i, b := range ps.bodies {
			p, err := dec.DecodePage(b, i+1, ingested)
			if err != nil {
				return fmt.Errorf("decode sample: %w", err)
			}
			if p.Rec != nil {
				p.Rec.Release()
			}
		}
		return nil
	})
	stopProfile()
	if err != nil {
		return r, err
	}
	// Encode the decoded sample, page-sized batches as the pipeline hands them over.
	var recs []arrow.RecordBatch
	dec.Reset(ps.w, event.Known{})
	for i, b := range ps.bodies {
		p, err := dec.DecodePage(b, i+1, ingested)
		if err != nil {
			return r, fmt.Errorf("decode sample: %w", err)
		}
		if p.Rec != nil {
			recs = append(recs, p.Rec)
		}
	}
	defer func() {
		for _, rec := range recs {
			rec.Release()
		}
	}()
	var out discardCounter
	stopProfile = startProfile("encode")
	encodePass := func(opts pqenc.Options) func() error {
		return func() error {
			out = discardCounter{}
			pw, err := pqenc.NewWriter(&out, pqenc.Meta{Window: ps.w, Version: "bench"}, opts)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				if err := pw.Write(rec); err != nil {
					return err
				}
			}
			return pw.Close()
		}
	}
	r.Encode, err = measure(minCPU, encodePass(pqenc.Options{}))
	stopProfile()
	if err != nil {
		return r, err
	}
	r.EncodeAllProcs = runtime.NumCPU()
	if r.EncodeAll, err = measureOn(r.EncodeAllProcs, minCPU, encodePass(pqenc.Options{EncodeWorkers: r.EncodeAllProcs})); err != nil {
		return r, err
	}
	r.EncodedBytes = out.n
	r.BytesPerEvent = float64(out.n) / float64(ps.events)
	r.DecodeVsValid = r.Valid.CPUSec / r.Decode.CPUSec
	r.EncodeVsValid = r.Valid.CPUSec / r.Encode.CPUSec
	return r, nil
}

// perCore returns events/s and MB/s (of JSON input) per CPU-second.
func (r stageResults) perCore(c cost) (eventsPerSec, mbPerSec float64) {
	return float64(r.SampleEvents) / c.CPUSec, float64(r.SampleBytes) / 1e6 / c.CPUSec
}
