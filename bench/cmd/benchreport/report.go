package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
)

type machine struct {
	CPU    string `json:"cpu_model"`
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Commit string `json:"commit"`
	MemMiB int    `json:"mem_total_mib"`
}

func machineInfo() machine {
	m := machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
		m.MemMiB = kb / 1024
	}
	m.Commit = commit()
	return m
}

// commit names the checkout measured: its commit, with "-dirty" if a
// tracked file differs from it. The report's own files do not count, so
// that a second run is not labelled dirty by the first one's output.
func commit() string {
	out, err := exec.Command("git", "describe", "--always").Output()
	if err != nil {
		return ""
	}
	c := strings.TrimSpace(string(out))
	changed, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--",
		".", ":!bench/REPORT.md", ":!bench/report.json").Output()
	if err != nil || len(bytes.TrimSpace(changed)) > 0 {
		c += "-dirty"
	}
	return c
}

// loadAvg is /proc/loadavg's 1, 5 and 15 minute figures.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

type goal struct {
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

type report struct {
	Date        string          `json:"date"`
	Machine     machine         `json:"machine"`
	Params      map[string]any  `json:"params"`
	LoadStart   string          `json:"load_average_start"`
	LoadEnd     string          `json:"load_average_end"`
	DurationSec float64         `json:"duration_seconds"`
	DiskMBps    float64         `json:"disk_write_fsync_mb_per_second"`
	DiskRuns    []float64       `json:"disk_runs_mb_per_second"`
	Syncs       []syncScenario  `json:"syncs"`
	Stages      *stageResults   `json:"stages,omitempty"`
	Backfill    *backfillResult `json:"backfill,omitempty"`
	Instr       *instrResult    `json:"instructions,omitempty"`
	Side        *sideBySide     `json:"side_by_side,omitempty"`
	GoBench     []goBench       `json:"go_benchmarks,omitempty"`
	Goals       []goal          `json:"goals"`
}

func (o options) params() map[string]any {
	return map[string]any{"events": o.events, "runs": o.runs, "backfill_days": o.backfillDays, "backfill_rate": o.bfRate,
		"instr_events": o.instrEvents, "duck_runs": o.duckRuns, "ratelimit_days": o.rlDays, "rate_limit": o.rateLimit, "sample_pages": o.sampleN, "stage_cpu": o.minCPU.String()}
}

func (r *report) sync(name string) *syncScenario {
	for i := range r.Syncs {
		if r.Syncs[i].Name == name {
			return &r.Syncs[i]
		}
	}
	return nil
}

// serialSec is how long the hourly day would take if decode and encode
// alternated on one core (their per-event CPU costs measured alone).
func (r *report) serialSec(events int64) float64 {
	if r.Stages == nil {
		return 0
	}
	per := (r.Stages.Decode.CPUSec + r.Stages.Encode.CPUSec) / float64(r.Stages.SampleEvents)
	return per * float64(events)
}

// minOverlap is the overlap goal: stages that alternate score 0, and a
// quarter of the shorter stage is far more than the incidental overlap of
// one page handed over.
const minOverlap = 0.25

func (r *report) evaluate() {
	add := func(g string, met bool, format string, a ...any) {
		r.Goals = append(r.Goals, goal{g, fmt.Sprintf(format, a...), met})
	}
	if h := r.sync("hourly"); h != nil {
		add("sync of a 1M-event day (hourly windows) >= 270,000 events/s", h.EventsPerSec >= 270_000, "%.0f events/s (median of %d)", h.EventsPerSec, len(h.Runs))
		add("vaultsink CPU <= 3 s per million events", h.CPUPerM <= 3, "%.2f s", h.CPUPerM)
		add("peak RSS <= 128 MiB", h.MaxRSSMiB <= 128, "%.1f MiB", h.MaxRSSMiB)
		for _, n := range []string{"daily", "hourly-x10"} {
			if o := r.sync(n); o != nil {
				ratio := o.MaxRSSMiB / h.MaxRSSMiB
				add(fmt.Sprintf("peak RSS flat (within 20%%) with more events per window: %s", n), ratio <= 1.2 && ratio >= 0.8,
					"%.1f MiB = %.2fx hourly", o.MaxRSSMiB, ratio)
			}
		}
		run := h.medianRun()
		add("decode and encode overlap (pipelined): both busy at once for >= 25% of the less busy stage's time (alternating stages score 0%)", h.Overlap >= minOverlap,
			"%.0f%% (median; e.g. decode busy %.2fs, encode %.2fs, both at once %.2fs of %.2fs wall)", 100*h.Overlap, run.DecodeBusySec, run.EncodeBusySec, run.BothBusySec, run.WallSec)
		add("output well under 100 bytes/event", h.Out.BytesPerEvent < 100, "%.1f B/event", h.Out.BytesPerEvent)
	}
	if b := r.Backfill; b != nil && len(b.Runs) >= 2 {
		add("backfill 30 days: --concurrency 8 >= 6x faster than 1 (50 ms latency)", b.Speedup >= 6, "%.2fx (%.1fs vs %.1fs)", b.Speedup, b.Runs[0].Run.WallSec, b.Runs[1].Run.WallSec)
		if len(b.Runs) > 2 {
			rl := b.Runs[2]
			add(fmt.Sprintf("rate limit %g req/s respected at --concurrency 8", rl.RateLimit), rl.BucketOK,
				"max %d requests in any 1 s (bucket allows %d), mean %.2f req/s", rl.MaxIn1s, rl.Allowed1s, rl.MeanRate)
		}
	}
	add("make bench under 10 minutes", r.DurationSec < 600, "%.0f s (plus make build)", r.DurationSec)
}

func yes(b bool) string {
	if b {
		return "met"
	}
	return "**missed**"
}

func (r *report) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# vaultsink benchmark report\n\n")
	p("Generated by `make bench` (`go run ./bench/cmd/benchreport -out bench`): the real `bin/vaultsim` and `bin/vaultsink` on loopback, zstd Parquet to local disk.\n\n")
	p("| | |\n|---|---|\n")
	p("| date | %s |\n| machine | %s, %d cores, %d MiB RAM, Linux %s |\n| Go | %s |\n| commit | %s |\n", r.Date, r.Machine.CPU, r.Machine.Cores, r.Machine.MemMiB, r.Machine.Kernel, r.Machine.Go, r.Machine.Commit)
	p("| load average (1/5/15 min) | start %s, end %s (the machine is shared; wall-clock figures move with it, CPU-time figures much less) |\n", r.LoadStart, r.LoadEnd)
	p("| duration | %.0f s |\n\n", r.DurationSec)

	p("## Goals\n\n| goal | measured | |\n|---|---|---|\n")
	for _, g := range r.Goals {
		p("| %s | %s | %s |\n", g.Goal, g.Measured, yes(g.Met))
	}
	r.sideMarkdown(p)
	p("\n## Floors (measured in this run)\n\n| floor | value |\n|---|---:|\n")
	p("| disk: sequential write of 256 MiB + fsync (work directory's disk) | %.0f MB/s (runs: %s) |\n", r.DiskMBps, fmtList(r.DiskRuns, "%.0f"))
	if s := r.Stages; s != nil {
		ev, mb := s.perCore(s.Valid)
		p("| `encoding/json.Valid` over the sampled pages, one core | %.0f MB/s (%.0f events/s) |\n", mb, ev)
	}

	if s := r.Stages; s != nil {
		p("\n## Stages, per core\n\n%d real pages (%d events, %.1f MB of JSON) from the hourly day's simulator, one goroutine at GOMAXPROCS=1; rates are per CPU-second (rusage), so per core.\n\n",
			r.Params["sample_pages"], s.SampleEvents, float64(s.SampleBytes)/1e6)
		p("| stage | events/s per core | JSON MB/s per core | x json.Valid | CPU s per 1M events | wall/CPU |\n|---|---:|---:|---:|---:|---:|\n")
		for _, st := range []struct {
			n string
			c cost
		}{{"json.Valid (floor)", s.Valid}, {"decode: page JSON -> Arrow record", s.Decode}, {"encode: Arrow -> Parquet zstd-1 (32k-row groups)", s.Encode}} {
			ev, mb := s.perCore(st.c)
			p("| %s | %.0f | %.0f | %.2f | %.2f | %.2f |\n", st.n, ev, mb, s.Valid.CPUSec/st.c.CPUSec, st.c.CPUSec/float64(s.SampleEvents)*1e6, st.c.WallSec/st.c.CPUSec)
		}
		p("\nEncoded sample: %.1f bytes/event.\n", s.BytesPerEvent)
		if a := s.EncodeAll; a.WallSec > 0 {
			p("\nThe encode stage again with GOMAXPROCS=%d and `encode_workers: %d` (a row group's columns encoded in parallel; the default is one goroutine): %.0f events/s of wall time, %.2fx the one-core wall rate, using %.2f CPU-seconds per wall-second and %.2f CPU s per 1M events.\n",
				s.EncodeAllProcs, s.EncodeAllProcs, float64(s.SampleEvents)/a.WallSec, s.Encode.WallSec/a.WallSec, a.CPUSec/a.WallSec, a.CPUSec/float64(s.SampleEvents)*1e6)
		}
	}

	p("\n## End to end: `vaultsink sync`\n\nEach scenario: a fresh output and checkpoint directory per run; vaultsink's CPU and peak RSS come from wait4's rusage of the vaultsink process alone; the simulator's CPU (same machine) is reported separately. Medians of the runs. Each simulator holds its whole history in a %d MiB cache and is warmed by one unmeasured sync, so the measured runs find the pages rendered and the simulator serves them from memory, as a real API serves them from its storage, instead of generating them on the same two cores (~1.5 CPU-s per million events; reports before 2026-11-26 included that).\n\n", simCacheMB)
	p("| scenario | events | windows | wall s | events/s | x Redpanda Connect (%.1fk/s, %s) | JSON MB/s | x json.Valid (1 core) | CPU s / 1M | CPU/wall | peak RSS MiB | sim CPU s / 1M | Parquet MB/s | x disk |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
		redpanda.EventsPerSec/1000, "measured separately "+redpanda.Date)
	validMB := 0.0
	if r.Stages != nil {
		_, validMB = r.Stages.perCore(r.Stages.Valid)
	}
	for _, sc := range r.Syncs {
		p("| %s (%s) | %d | %d | %.2f | %.0f | %.1f | %.0f | %s | %.2f | %.2f | %.1f | %.2f | %.1f | %s |\n", sc.Name, sc.What, sc.Events, sc.Windows, sc.WallSec, sc.EventsPerSec, sc.EventsPerSec/redpanda.EventsPerSec,
			sc.JSONMBps, ratio(sc.JSONMBps, validMB), sc.CPUPerM, sc.CPUOverWall, sc.MaxRSSMiB, sc.SimCPUPerM, sc.WriteMBps, ratio(sc.WriteMBps, r.DiskMBps))
	}
	p("\nEvery run (busy times: wall time the stage was in progress, from the sync's summary):\n\n| scenario | run | wall s | user s | sys s | peak RSS MiB | sim CPU s | decode busy s | encode busy s | both busy s | overlap |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, sc := range r.Syncs {
		for i, run := range sc.Runs {
			p("| %s | %d | %.2f | %.2f | %.2f | %.1f | %.2f | %.2f | %.2f | %.2f | %.0f%% |\n", sc.Name, i, run.WallSec, run.UserSec, run.SysSec, run.MaxRSSMiB, sc.SimCPUSec[i],
				run.DecodeBusySec, run.EncodeBusySec, run.BothBusySec, 100*run.overlap())
		}
	}
	if h := r.sync("hourly"); h != nil {
		serial := r.serialSec(h.Events)
		run := h.medianRun()
		p("\n**Pipelining.** vaultsink times its two CPU stages in wall-clock terms (internal/pipeclock; the sync's summary prints it and `vaultsink_pipeline_*` exports it): in the hourly run with the median overlap, decode was in progress for %.2f s, encode for %.2f s, and both at once for %.2f s of the %.2f s wall: an overlap of %.0f%% of the less busy stage's time. Stages that alternated would score 0. What overlaps: the next page is fetched while the current one decodes (read-ahead), pages are decoded while earlier ones are encoded (by one goroutine; `encode_workers` above 1 also splits a row group's columns over several cores), and the next window is fetched while the current one commits. vaultsink used %.2f CPU-seconds per wall-second; the simulator, on the same two cores, used %.2f CPU-seconds per million events.\n",
			run.DecodeBusySec, run.EncodeBusySec, run.BothBusySec, run.WallSec, 100*run.overlap(), h.CPUOverWall, h.SimCPUPerM)
		verdict := "above"
		if h.WallSec < serial {
			verdict = "below"
		}
		p("\nAn earlier report judged the overlap by comparing the wall time with decode+encode run one after the other on one core (%.2f s of CPU for these %d events, stage table); here the wall time is %.2f s, %s it. On this shared 2-core machine the wall time also carries the simulator's CPU and the fetches, so that comparison measures the machine more than the overlap; it is kept for comparison, not as a goal.\n",
			serial, h.Events, h.WallSec, verdict)
	}

	p("\n## Output size\n\n| scenario | files | bytes | bytes/event | file size min / median / max | row groups | rows per group min / median / max | row group bytes min / median / max |\n|---|---:|---:|---:|---|---:|---|---|\n")
	for _, sc := range r.Syncs {
		o := sc.Out
		p("| %s | %d | %d | %.1f | %s / %s / %s | %d | %.0f / %.0f / %.0f | %s / %s / %s |\n", sc.Name, o.Files, o.Bytes, o.BytesPerEvent,
			mib(o.FileBytes.Min), mib(o.FileBytes.Median), mib(o.FileBytes.Max), o.RowGroups, o.RowGroupRows.Min, o.RowGroupRows.Median, o.RowGroupRows.Max,
			mib(o.RowGroupBytes.Min), mib(o.RowGroupBytes.Median), mib(o.RowGroupBytes.Max))
	}
	if h := r.sync("hourly"); h != nil && len(h.Out.ColumnBytesPer) > 0 {
		p("\nCompressed bytes per event by column (hourly):%s\n", columnList(h.Out.ColumnBytesPer))
	}

	if bf := r.Backfill; bf != nil {
		p("\n## Backfill (simulator adds %d ms to every page, %.0f events/hour, hourly windows)\n\n", bf.LatencyMs, bf.Rate)
		p("| days | --concurrency | rate_limit | windows | requests | events | wall s | requests/s | CPU s | peak RSS MiB |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, br := range bf.Runs {
			rl := "none"
			if br.RateLimit > 0 {
				rl = fmt.Sprintf("%g/s", br.RateLimit)
			}
			p("| %d | %d | %s | %d | %d | %d | %.2f | %.1f | %.2f | %.1f |\n", br.Days, br.Concurrency, rl, br.Windows, br.Requests, br.Events, br.Run.WallSec,
				float64(br.Requests)/br.Run.WallSec, br.Run.CPUSec(), br.Run.MaxRSSMiB)
		}
		if len(bf.Runs) >= 2 {
			c1 := bf.Runs[0]
			p("\nSpeedup of --concurrency 8 over 1: **%.2fx**. Latency floor of --concurrency 1: %d requests x %d ms = %.1f s (x%.2f of it measured).\n",
				bf.Speedup, c1.Requests, bf.LatencyMs, float64(c1.Requests)*float64(bf.LatencyMs)/1000, c1.Run.WallSec/(float64(c1.Requests)*float64(bf.LatencyMs)/1000))
		}
		if len(bf.Runs) > 2 {
			rl := bf.Runs[2]
			p("\nRate limit check (arrival times from the simulator's request log, `vaultsim serve -v`): token bucket of %g req/s with burst %d; any n consecutive requests must span >= (n - burst) / rate seconds, less %v for the arrival times' jitter (they are taken when the simulator's handler starts, on a machine busy with eight walks). Worst excess: %.2f requests (<= 0 means respected); the earliest arrival was %.1f ms ahead of the bucket before that allowance. Max requests in any 1 s: %d (bucket allows %d). Mean rate %.2f req/s.\n",
				rl.RateLimit, max(1, int(rl.RateLimit)), arrivalJitter, rl.WorstExcess, rl.AheadMs, rl.MaxIn1s, rl.Allowed1s, rl.MeanRate)
		}
	}
	r.instrMarkdown(p)
	if len(r.GoBench) > 0 {
		p("\n## Go benchmarks (synthetic pages, one core)\n\n")
		for _, g := range r.GoBench {
			p("`%s`\n\n```\n%s\n```\n\n", g.Cmd, strings.Join(g.Lines, "\n"))
		}
	}
	return b.String()
}

// columnList is " column bytes;" for each column, largest first.
func columnList(perEvent map[string]float64) string {
	var cols []string
	for c := range perEvent {
		cols = append(cols, c)
	}
	slices.SortFunc(cols, func(a, b string) int {
		if c := cmp.Compare(perEvent[b], perEvent[a]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	for _, c := range cols {
		fmt.Fprintf(&b, " %s %.1f;", c, perEvent[c])
	}
	return b.String()
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func mib(v float64) string { return fmt.Sprintf("%.2f MiB", v/(1<<20)) }

func fmtList(v []float64, f string) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf(f, x))
	}
	return strings.Join(s, ", ")
}

func (r *report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "REPORT.md"), []byte(r.markdown()), 0o644)
}
