package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The side-by-side comparison: vaultsink and the DuckDB script
// (bench/cmd/duckpeer) sync the hourly day from the same warmed simulator,
// alternately, the same number of runs each, so that both see the same
// machine in the same minutes. Each output is counted with DuckDB in a
// separate process (bench/cmd/duckcount) and compared with `vaultsim
// truth`: the run is exact when every event id is there once.

// separately is a peer measured once outside `make bench` (2026-12-03: a
// 1,000,103-event simulator day, 8 runs interleaved with vaultsink's,
// every output counted exact); `make bench` cannot rerun it, for want of
// the Redpanda Connect binary or of Python.
type separately struct {
	What, Date                     string
	EventsPerSec, CPUPerM, MaxRSSM float64
}

var (
	redpanda   = separately{"Redpanda Connect 4.106 (http_client → parquet_encode)", "2026-12-03", 32_800, 49.8, 1212}
	pythonDuck = separately{"a Python fetch loop + the same DuckDB `COPY`", "2026-12-03", 266_000, 5.55, 1305}
)

func (p separately) String() string {
	return fmt.Sprintf("%s: %.0f events/s, %.2f CPU s per 1M events, %.0f MiB peak RSS", p.What, p.EventsPerSec, p.CPUPerM, p.MaxRSSM)
}

// idCheck is duckcount's answer for one output, compared with the truth.
type idCheck struct {
	Rows     int64  `json:"rows"`
	Distinct int64  `json:"distinct_ids"`
	Digest   string `json:"digest"`
	Exact    bool   `json:"exact"`
}

// truth is `vaultsim truth`'s answer for the day.
type truth struct {
	Count  int64  `json:"count"`
	Digest string `json:"digest"`
}

func (c *idCheck) judge(t truth) {
	c.Exact = c.Rows == t.Count && c.Distinct == t.Count && c.Digest == t.Digest
}

// sideRun is one measured run of either side.
type sideRun struct {
	Pair      int      `json:"pair"`
	First     bool     `json:"ran_first_in_pair"`
	Run       childRun `json:"run"`
	Events    int64    `json:"events"`
	Bytes     int64    `json:"output_bytes"`
	SimCPUSec float64  `json:"sim_cpu_seconds"`
	Check     idCheck  `json:"check"`
	// The script's own split (its output line): the fetch loop writing
	// NDJSON, then DuckDB's COPY, in wall and CPU seconds.
	FetchSec    float64 `json:"fetch_seconds,omitempty"`
	CopySec     float64 `json:"copy_seconds,omitempty"`
	FetchCPU    float64 `json:"fetch_cpu_seconds,omitempty"`
	CopyCPU     float64 `json:"copy_cpu_seconds,omitempty"`
	NDJSONBytes int64   `json:"ndjson_bytes,omitempty"`
}

func (r sideRun) eventsPerSec() float64 { return float64(r.Events) / r.Run.WallSec }
func (r sideRun) cpuPerM() float64      { return r.Run.CPUSec() / (float64(r.Events) / 1e6) }
func (r sideRun) bytesPerEvent() float64 {
	if r.Events == 0 {
		return 0
	}
	return float64(r.Bytes) / float64(r.Events)
}

// sideSummary is one side's runs and their medians.
type sideSummary struct {
	Runs          []sideRun `json:"runs"`
	EventsPerSec  float64   `json:"median_events_per_second"`
	CPUPerM       float64   `json:"median_cpu_seconds_per_million"`
	MaxRSSMiB     float64   `json:"median_max_rss_mib"`
	BytesPerEvent float64   `json:"median_bytes_per_event"`
	SimCPUPerM    float64   `json:"median_sim_cpu_seconds_per_million"`
	ExactRuns     int       `json:"exact_runs"`
}

func (s *sideSummary) summarize() {
	var eps, cpm, rss, bpe, sim []float64
	s.ExactRuns = 0
	for _, r := range s.Runs {
		eps = append(eps, r.eventsPerSec())
		cpm = append(cpm, r.cpuPerM())
		rss = append(rss, r.Run.MaxRSSMiB)
		bpe = append(bpe, r.bytesPerEvent())
		sim = append(sim, r.SimCPUSec/(float64(r.Events)/1e6))
		if r.Check.Exact {
			s.ExactRuns++
		}
	}
	s.EventsPerSec, s.CPUPerM, s.MaxRSSMiB = median(eps), median(cpm), median(rss)
	s.BytesPerEvent, s.SimCPUPerM = median(bpe), median(sim)
}

// paired is vaultsink's advantage in one figure: the ratio of the two
// medians, and the range of the ratios within each pair of runs.
type paired struct {
	OfMedians float64 `json:"of_medians"`
	Min       float64 `json:"paired_min"`
	Max       float64 `json:"paired_max"`
}

// pairedRatio compares a and b run by run (a[i] with b[i]); f gives the
// ratio of one pair, and also of the medians passed as ma, mb.
func pairedRatio(a, b []sideRun, ma, mb float64, f func(x, y float64) float64, val func(sideRun) float64) paired {
	p := paired{OfMedians: f(ma, mb)}
	for i := range min(len(a), len(b)) {
		r := f(val(a[i]), val(b[i]))
		if i == 0 || r < p.Min {
			p.Min = r
		}
		if i == 0 || r > p.Max {
			p.Max = r
		}
	}
	return p
}

func div(x, y float64) float64 {
	if y == 0 {
		return 0
	}
	return x / y
}

// sideBySide is the whole comparison.
type sideBySide struct {
	Skipped   string      `json:"skipped,omitempty"`
	DuckDB    string      `json:"duckdb_version"`
	From      string      `json:"from"`
	To        string      `json:"to"`
	Truth     truth       `json:"truth"`
	ParentMiB float64     `json:"benchreport_max_rss_mib"` // the floor of every child's peak RSS
	Vaultsink sideSummary `json:"vaultsink"`
	Script    sideSummary `json:"duckdb_script"`
	// vaultsink's advantage: events/s vaultsink/script; CPU, RSS and bytes script/vaultsink.
	Speed paired   `json:"speed_ratio"`
	CPU   paired   `json:"cpu_ratio"`
	RSS   paired   `json:"rss_ratio"`
	Size  paired   `json:"bytes_ratio"`
	Out   outStats `json:"duckdb_script_output"` // of its last run
}

func (sb *sideBySide) summarize() {
	v, s := &sb.Vaultsink, &sb.Script
	v.summarize()
	s.summarize()
	sb.Speed = pairedRatio(v.Runs, s.Runs, v.EventsPerSec, s.EventsPerSec, div, sideRun.eventsPerSec)
	inv := func(x, y float64) float64 { return div(y, x) }
	sb.CPU = pairedRatio(v.Runs, s.Runs, v.CPUPerM, s.CPUPerM, inv, sideRun.cpuPerM)
	sb.RSS = pairedRatio(v.Runs, s.Runs, v.MaxRSSMiB, s.MaxRSSMiB, inv, func(r sideRun) float64 { return r.Run.MaxRSSMiB })
	sb.Size = pairedRatio(v.Runs, s.Runs, v.BytesPerEvent, s.BytesPerEvent, inv, sideRun.bytesPerEvent)
}

// keyValues parses a line of space-separated key=value fields.
func keyValues(line string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

// parseFields reads the named fields of a key=value line into ints,
// floats or strings; a missing or malformed field is an error.
func parseFields(line string, into map[string]any) error {
	kv := keyValues(line)
	for k, dst := range into {
		v, ok := kv[k]
		if !ok {
			return fmt.Errorf("no %s= in %q", k, line)
		}
		var err error
		switch d := dst.(type) {
		case *int64:
			*d, err = strconv.ParseInt(v, 10, 64)
		case *float64:
			*d, err = strconv.ParseFloat(v, 64)
		case *string:
			*d = v
		default:
			return fmt.Errorf("field %s: unsupported %T", k, dst)
		}
		if err != nil {
			return fmt.Errorf("field %s of %q: %w", k, line, err)
		}
	}
	return nil
}

// parsePeerLine reads duckpeer's output line into r.
func parsePeerLine(line string, r *sideRun) (duckdb string, err error) {
	return duckdb, parseFields(line, map[string]any{"events": &r.Events, "fetch_seconds": &r.FetchSec, "copy_seconds": &r.CopySec,
		"fetch_cpu_seconds": &r.FetchCPU, "copy_cpu_seconds": &r.CopyCPU, "ndjson_bytes": &r.NDJSONBytes, "duckdb": &duckdb})
}

// parseCount reads duckcount's output line.
func parseCount(line string) (idCheck, error) {
	var c idCheck
	return c, parseFields(line, map[string]any{"rows": &c.Rows, "distinct": &c.Distinct, "digest": &c.Digest})
}

// peerBins builds duckpeer and duckcount (cgo: DuckDB) into dir.
func peerBins(dir string) (peer, count string, err error) {
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./bench/cmd/duckpeer", "./bench/cmd/duckcount")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./bench/cmd/duckpeer ./bench/cmd/duckcount (cgo and a C compiler are needed): %w\n%s", err, tail(string(out)))
	}
	return filepath.Join(dir, "duckpeer"), filepath.Join(dir, "duckcount"), nil
}

func selfMaxRSSMiB() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024
}

func (b *bencher) sideBySide() error {
	if b.o.duckRuns < 1 {
		return nil
	}
	if b.hourSim == nil {
		return fmt.Errorf("the hourly simulator is not running")
	}
	from, to := b.hourFrom.Format(time.RFC3339), b.hourFrom.Add(24*time.Hour).Format(time.RFC3339)
	sb := &sideBySide{From: from, To: to}
	b.rep.Side = sb
	peerBin, countBin, err := peerBins(filepath.Join(b.work, "peer-bin"))
	if err != nil {
		sb.Skipped = err.Error()
		log.Printf("  skipped: %v", err)
		return nil
	}
	tr, err := runChild(nil, b.simBin, "truth", "--seed", "42", "--rate", b.hourRate, "--org", "org_1", "--from", from, "--to", to)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(tr.stdout), &sb.Truth); err != nil || sb.Truth.Count == 0 {
		return fmt.Errorf("vaultsim truth: %q: %v", tr.stdout, err)
	}
	sr := &sideRunner{b: b, sb: sb, peerBin: peerBin, countBin: countBin}
	for pair := range b.o.duckRuns {
		// Alternate which side goes first, so that neither always runs
		// on the other's page cache and heat.
		order := []func(int, bool) error{sr.vaultsink, sr.script}
		if pair%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for i, fn := range order {
			if err := fn(pair, i == 0); err != nil {
				return err
			}
		}
	}
	// A child's ru_maxrss is at least this process's own peak when it
	// started (internal/testbin/peakrss); this is the highest that was.
	sb.ParentMiB = selfMaxRSSMiB()
	sb.summarize()
	return nil
}

// sideRunner runs one side of a pair and checks its output.
type sideRunner struct {
	b                 *bencher
	sb                *sideBySide
	peerBin, countBin string
}

func (sr *sideRunner) vaultsink(pair int, first bool) error {
	s := sr.b.hourSim
	dir := filepath.Join(sr.b.work, "side", fmt.Sprintf("vaultsink-%d", pair))
	cfg, err := writeConfig(dir, s.base, s.tokens, sr.b.hourFrom, "1h", 0)
	if err != nil {
		return err
	}
	c0 := s.cpu()
	cr, err := runChild(nil, sr.b.sinkBin, "sync", "--config", cfg, "--output", "json")
	if err != nil {
		return err
	}
	r := sideRun{Pair: pair, First: first, Run: cr, SimCPUSec: s.cpu() - c0}
	if _, r.Events, err = syncEvents(cr.stdout); err != nil {
		return err
	}
	if _, err := sr.check(filepath.Join(dir, "out"), &r); err != nil {
		return err
	}
	sr.sb.Vaultsink.Runs = append(sr.sb.Vaultsink.Runs, r)
	log.Printf("  pair %d vaultsink: %d events in %.2fs wall, %.2fs CPU, peak RSS %.1f MiB, exact %v",
		pair, r.Events, cr.WallSec, cr.CPUSec(), cr.MaxRSSMiB, r.Check.Exact)
	return os.RemoveAll(dir)
}

func (sr *sideRunner) script(pair int, first bool) error {
	s := sr.b.hourSim
	dir := filepath.Join(sr.b.work, "side", fmt.Sprintf("script-%d", pair))
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	c0 := s.cpu()
	cr, err := runChild(nil, sr.peerBin, "-base", s.base, "-token-file", filepath.Join(s.tokens, "org_1.token"),
		"-from", sr.sb.From, "-to", sr.sb.To, "-out", filepath.Join(out, "events.parquet"))
	if err != nil {
		return err
	}
	r := sideRun{Pair: pair, First: first, Run: cr, SimCPUSec: s.cpu() - c0}
	if sr.sb.DuckDB, err = parsePeerLine(cr.stdout, &r); err != nil {
		return fmt.Errorf("duckpeer: %w", err)
	}
	st, err := sr.check(out, &r)
	if err != nil {
		return err
	}
	sr.sb.Out = st
	sr.sb.Script.Runs = append(sr.sb.Script.Runs, r)
	log.Printf("  pair %d DuckDB script: %d events in %.2fs wall (fetch %.2fs, COPY %.2fs), %.2fs CPU, peak RSS %.1f MiB, exact %v",
		pair, r.Events, cr.WallSec, r.FetchSec, r.CopySec, cr.CPUSec(), cr.MaxRSSMiB, r.Check.Exact)
	return os.RemoveAll(dir)
}

// check counts the ids of the Parquet files under dir with duckcount,
// judges them against the truth and sizes them.
func (sr *sideRunner) check(dir string, r *sideRun) (outStats, error) {
	cr, err := runChild(nil, sr.countBin, filepath.Join(dir, "**", "*.parquet"))
	if err != nil {
		return outStats{}, err
	}
	if r.Check, err = parseCount(cr.stdout); err != nil {
		return outStats{}, err
	}
	r.Check.judge(sr.sb.Truth)
	st, err := parquetStats(dir)
	r.Bytes = st.Bytes
	return st, err
}

// sideMarkdown writes the "Side by side" section.
func (r *report) sideMarkdown(p func(string, ...any)) {
	sb := r.Side
	if sb == nil {
		return
	}
	p("\n## Side by side: vaultsink and a DuckDB script\n\n")
	if sb.Skipped != "" {
		p("Not measured: %s\n", sb.Skipped)
		return
	}
	v, s := sb.Vaultsink, sb.Script
	p("The same hourly day (%s to %s, %d events per `vaultsim truth`) from the same warmed simulator, in %d pairs of runs in this `make bench` run: vaultsink (`sync`, 24 hourly windows) and the script that a competent engineer would write instead (bench/cmd/duckpeer: page through the API with the bearer token, cursor pagination, 1,000 events a page, one request at a time; append each page's events to an NDJSON temp file; then DuckDB %s `COPY (SELECT … FROM read_json(…)) TO '…parquet' (FORMAT parquet, COMPRESSION zstd)` with vaultsink's columns declared, less `extra`, one file for the day). The two alternate, and which goes first alternates by pair. Medians; the advantage is the ratio of the medians, with the lowest and highest ratio within a pair. CPU and peak RSS are each process's own rusage from wait4 (children included), read while this process's own peak was %.0f MiB, which is the floor of any figure here (internal/testbin/peakrss). Exact: DuckDB (bench/cmd/duckcount, its own process) counted every event id of the output once and the sorted ids hash to the truth's digest.\n\n",
		sb.From, sb.To, sb.Truth.Count, len(v.Runs), sb.DuckDB, sb.ParentMiB)
	p("| | vaultsink | DuckDB script | vaultsink's advantage (paired range) |\n|---|---:|---:|---|\n")
	p("| events/s | %.0f | %.0f | %s |\n", v.EventsPerSec, s.EventsPerSec, sb.Speed)
	p("| CPU s per 1M events | %.2f | %.2f | %s |\n", v.CPUPerM, s.CPUPerM, sb.CPU)
	p("| peak RSS MiB | %.1f | %.1f | %s |\n", v.MaxRSSMiB, s.MaxRSSMiB, sb.RSS)
	p("| Parquet bytes/event | %.1f | %.1f | %s |\n", v.BytesPerEvent, s.BytesPerEvent, sb.Size)
	p("| output exact (every id once) | %s | %s | |\n", exactOf(v), exactOf(s))
	p("| simulator CPU s per 1M events (serving) | %.2f | %.2f | |\n", v.SimCPUPerM, s.SimCPUPerM)
	if len(s.Runs) > 0 {
		var fetch, cp, fetchCPU, cpCPU, nd []float64
		for _, run := range s.Runs {
			fetch, cp, nd = append(fetch, run.FetchSec), append(cp, run.CopySec), append(nd, float64(run.NDJSONBytes))
			fetchCPU, cpCPU = append(fetchCPU, run.FetchCPU), append(cpCPU, run.CopyCPU)
		}
		p("\nWhere the script's time goes (medians): the fetch loop writing %.0f MB of NDJSON %.2f s (%.2f CPU s), DuckDB's COPY %.2f s (%.2f CPU s). Its Parquet (last run): %d file, %d row groups of %.0f rows (median); compressed bytes per event by column:%s\n",
			median(nd)/1e6, median(fetch), median(fetchCPU), median(cp), median(cpCPU), sb.Out.Files, sb.Out.RowGroups, sb.Out.RowGroupRows.Median, columnList(sb.Out.ColumnBytesPer))
	}
	p("\nMeasured separately on %s with the same simulator day (not rerun by `make bench`): %s; %s. This run's vaultsink is %.1fx the first's speed and %.1fx the second's.\n",
		redpanda.Date, redpanda, pythonDuck, v.EventsPerSec/redpanda.EventsPerSec, v.EventsPerSec/pythonDuck.EventsPerSec)
	p("\n| pair | side | ran | wall s | user s | sys s | peak RSS MiB | events/s | CPU s / 1M | bytes/event | fetch s | COPY s | rows | distinct ids | exact |\n|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for i := range max(len(v.Runs), len(s.Runs)) {
		for _, side := range []struct {
			name string
			runs []sideRun
		}{{"vaultsink", v.Runs}, {"DuckDB script", s.Runs}} {
			if i >= len(side.runs) {
				continue
			}
			run := side.runs[i]
			split := "| - | -"
			if run.FetchSec > 0 {
				split = fmt.Sprintf("| %.2f | %.2f", run.FetchSec, run.CopySec)
			}
			p("| %d | %s | %s | %.2f | %.2f | %.2f | %.1f | %.0f | %.2f | %.1f %s | %d | %d | %s |\n", run.Pair, side.name, turn(run.First),
				run.Run.WallSec, run.Run.UserSec, run.Run.SysSec, run.Run.MaxRSSMiB, run.eventsPerSec(), run.cpuPerM(), run.bytesPerEvent(), split,
				run.Check.Rows, run.Check.Distinct, yesNo(run.Check.Exact))
		}
	}
}

func (p paired) String() string {
	return fmt.Sprintf("%.2fx (%.2f–%.2f)", p.OfMedians, p.Min, p.Max)
}

func exactOf(s sideSummary) string {
	return fmt.Sprintf("%d of %d runs", s.ExactRuns, len(s.Runs))
}

func turn(first bool) string {
	if first {
		return "1st"
	}
	return "2nd"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}
