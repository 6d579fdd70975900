package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"
	"github.com/vaultsink/vaultsink/runner"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

const settle = 5 * time.Minute

type bencher struct {
	o               options
	simBin, sinkBin string
	work            string
	rep             *report
	hourSim         *sim // serves the hourly day; the stage sample and the side-by-side use it
	hourFrom        time.Time
	hourRate        string // its --rate
}

// disk measures the raw sequential write speed of the work directory's
// disk: 256 MiB in 4 MiB writes, then fsync.
func (b *bencher) disk() error {
	buf := make([]byte, 4<<20)
	for i := range buf {
		buf[i] = byte(i*131 + i>>9)
	}
	var speeds []float64
	for range 2 {
		p := filepath.Join(b.work, "disk-floor.bin")
		t0 := time.Now()
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		for range 64 {
			if _, err := f.Write(buf); err != nil {
				f.Close()
				return err
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		f.Close()
		speeds = append(speeds, 256*(1<<20)/1e6/time.Since(t0).Seconds())
		os.Remove(p)
	}
	b.rep.DiskMBps = median(speeds)
	b.rep.DiskRuns = speeds
	return nil
}

// calibrate returns the simulator rate that yields about want events in
// [from,to): the simulator's hourly counts scale linearly with the rate.
func calibrate(want float64, from, to time.Time) (float64, error) {
	const probe = 1000.0
	n, _, err := vaultsim.TruthOf(42, probe, "org_1", from, to)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("no events in %s..%s at rate %v", from, to, probe)
	}
	return probe * want / float64(n), nil
}

func writeConfig(dir, base, tokens string, start time.Time, window string, rateLimit float64) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "source:\n  base_url: %s\n", base)
	if rateLimit > 0 {
		fmt.Fprintf(&b, "  rate_limit: %g\n", rateLimit)
	}
	fmt.Fprintf(&b, "orgs:\n  - id: org_1\n    token_file: %s\n", filepath.Join(tokens, "org_1.token"))
	fmt.Fprintf(&b, "start: %s\nwindow: %s\nsettle: %s\nconcurrency: 1\nlog:\n  level: warn\n", start.Format(time.RFC3339), window, settle)
	fmt.Fprintf(&b, "sink:\n  type: local\n  path: %s\ncheckpoint:\n  type: file\n  path: %s\n", filepath.Join(dir, "out"), filepath.Join(dir, "state"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "vaultsink.yaml")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// syncEvents reads the JSON summary `vaultsink sync --output json` printed:
// the report and the events the pass wrote over every org.
func syncEvents(stdout string) (runner.SummaryReport, int64, error) {
	var r runner.SummaryReport
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		return r, 0, fmt.Errorf("sync printed no JSON summary (%v): %s", err, tail(stdout))
	}
	var n int64
	for _, o := range r.Orgs {
		n += o.Events
	}
	return r, n, nil
}

// syncScenario is one sync configuration run several times.
type syncScenario struct {
	Name      string     `json:"name"`
	What      string     `json:"what"`
	Window    string     `json:"window"`
	Env       string     `json:"env,omitempty"`
	From      string     `json:"from"`
	To        string     `json:"to"`
	Windows   int        `json:"windows"`
	Rate      float64    `json:"sim_rate_per_hour"`
	Events    int64      `json:"events"`
	Runs      []childRun `json:"runs"`
	SimCPUSec []float64  `json:"sim_cpu_seconds"`
	Out       outStats   `json:"output"`
	// Medians over the runs.
	WallSec      float64 `json:"median_wall_seconds"`
	EventsPerSec float64 `json:"median_events_per_second"`
	CPUPerM      float64 `json:"median_cpu_seconds_per_million"`
	CPUOverWall  float64 `json:"median_cpu_over_wall"`
	MaxRSSMiB    float64 `json:"median_max_rss_mib"`
	SimCPUPerM   float64 `json:"median_sim_cpu_seconds_per_million"`
	JSONMBps     float64 `json:"median_json_mb_per_second"`
	Overlap      float64 `json:"median_overlap"` // both busy / the less busy stage's busy time
	WriteMBps    float64 `json:"median_parquet_mb_per_second"`
}

func (b *bencher) syncScenarios() error {
	horizon := time.Now().UTC().Add(-settle - 3*time.Minute)
	h1 := horizon.Truncate(time.Hour)
	h0 := h1.Add(-24 * time.Hour)
	d1 := horizon.Truncate(24 * time.Hour)
	d0 := d1.Add(-24 * time.Hour)
	x0 := h1.Add(-3 * time.Hour)
	perHour := float64(b.o.events) / 24
	specs := []struct {
		name, what, window string
		from, to           time.Time
		want               float64
		env                []string
	}{
		{"hourly", fmt.Sprintf("one day of %d events, hourly windows (%.0f events/window)", b.o.events, perHour), "1h", h0, h1, float64(b.o.events), nil},
		{"hourly-memlimit", "the hourly day again with GOMEMLIMIT=80MiB (Go's soft memory limit)", "1h", h0, h1, float64(b.o.events), []string{"GOMEMLIMIT=80MiB"}},
		{"daily", fmt.Sprintf("one day of %d events in ONE 24h window (24x the events per window)", b.o.events), "24h", d0, d1, float64(b.o.events), nil},
		{"hourly-x10", fmt.Sprintf("3 hours at 10x the rate, hourly windows (%.0f events/window, 10x)", 10*perHour), "1h", x0, h1, 30 * perHour, nil},
	}
	var s *sim
	for i, sp := range specs {
		rate, err := calibrate(sp.want, sp.from, sp.to)
		if err != nil {
			return err
		}
		switch {
		case sp.name == "hourly-memlimit" && b.o.setupOnly():
			continue
		case sp.name == "hourly-memlimit":
			// The same day from the same simulator.
		default:
			s, err = startSim(b.simBin, filepath.Join(b.work, "sim-"+sp.name), "--from", sp.from.Format(time.RFC3339), "--to", sp.to.Format(time.RFC3339),
				"--rate", simRate(rate), "--cache-mb", strconv.Itoa(simCacheMB))
			if err != nil {
				return err
			}
			if err := b.warmUp(s, sp.name, sp.from, sp.window); err != nil {
				return err
			}
			if i == 0 {
				b.hourSim, b.hourFrom, b.hourRate = s, sp.from, simRate(rate)
				if b.o.setupOnly() {
					return nil
				}
			} else {
				defer s.stop()
			}
		}
		sc := syncScenario{Env: strings.Join(sp.env, " "), Name: sp.name, What: sp.what, Window: sp.window, From: sp.from.Format(time.RFC3339), To: sp.to.Format(time.RFC3339), Rate: rate}
		win, _ := time.ParseDuration(sp.window)
		sc.Windows = int(sp.to.Sub(sp.from) / win)
		for r := range b.o.runs {
			dir := filepath.Join(b.work, sp.name, fmt.Sprintf("run-%d", r))
			cfg, err := writeConfig(dir, s.base, s.tokens, sp.from, sp.window, 0)
			if err != nil {
				return err
			}
			c0 := s.cpu()
			cr, err := runChild(sp.env, b.sinkBin, "sync", "--config", cfg, "--output", "json")
			if err != nil {
				return err
			}
			simCPU := s.cpu() - c0
			rep, n, err := syncEvents(cr.stdout)
			if err != nil {
				return err
			}
			if sc.Events != 0 && n != sc.Events {
				return fmt.Errorf("%s: run %d wrote %d events, an earlier run %d", sp.name, r, n, sc.Events)
			}
			sc.Events = n
			p := rep.Pipeline
			cr.DecodeBusySec, cr.EncodeBusySec, cr.BothBusySec = p.DecodeBusySeconds, p.EncodeBusySeconds, p.BothBusySeconds
			sc.Runs = append(sc.Runs, cr)
			sc.SimCPUSec = append(sc.SimCPUSec, simCPU)
			log.Printf("  %s run %d: %d events in %.2fs wall, %.2fs CPU, peak RSS %.1f MiB; simulator %.2fs CPU",
				sp.name, r, n, cr.WallSec, cr.CPUSec(), cr.MaxRSSMiB, simCPU)
			if r == b.o.runs-1 {
				if sc.Out, err = parquetStats(filepath.Join(dir, "out")); err != nil {
					return fmt.Errorf("read output: %w", err)
				}
			}
			if r < b.o.runs-1 || !b.o.keep {
				os.RemoveAll(filepath.Join(dir, "out"))
			}
		}
		sc.summarize()
		b.rep.Syncs = append(b.rep.Syncs, sc)
	}
	return nil
}

// simRate is the --rate argument of vaultsim serve and truth.
func simRate(perHour float64) string { return strconv.FormatFloat(perHour, 'f', 1, 64) }

// simCacheMB holds a whole scenario's rendered history in the simulator
// (a 1M-event day is ~470 MiB; its default 256 MiB held less than a day,
// so every run re-rendered every hour).
const simCacheMB = 1024

// warmUp runs one unmeasured sync against a freshly started simulator, so
// that the measured runs find its history rendered: the simulator then
// serves pages from memory, as a real API serves them from its storage,
// instead of spending ~1.5 CPU-s per million events of the same two cores
// generating them.
func (b *bencher) warmUp(s *sim, name string, from time.Time, window string) error {
	dir := filepath.Join(b.work, name, "warm-up")
	cfg, err := writeConfig(dir, s.base, s.tokens, from, window, 0)
	if err != nil {
		return err
	}
	c0 := s.cpu()
	cr, err := runChild(nil, b.sinkBin, "sync", "--config", cfg)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	log.Printf("  %s warm-up (not measured): %.2fs wall; simulator %.2fs CPU rendering the history", name, cr.WallSec, s.cpu()-c0)
	return os.RemoveAll(dir)
}

func (sc *syncScenario) summarize() {
	var wall, eps, cpm, cow, rss, sim, ovl []float64
	m := float64(sc.Events) / 1e6
	for i, r := range sc.Runs {
		wall = append(wall, r.WallSec)
		eps = append(eps, float64(sc.Events)/r.WallSec)
		cpm = append(cpm, r.CPUSec()/m)
		cow = append(cow, r.CPUSec()/r.WallSec)
		rss = append(rss, r.MaxRSSMiB)
		sim = append(sim, sc.SimCPUSec[i]/m)
		ovl = append(ovl, r.overlap())
	}
	sc.WallSec, sc.EventsPerSec, sc.CPUPerM = median(wall), median(eps), median(cpm)
	sc.CPUOverWall, sc.MaxRSSMiB, sc.SimCPUPerM = median(cow), median(rss), median(sim)
	sc.Overlap = median(ovl)
	if sc.Out.Rows > 0 {
		sc.WriteMBps = float64(sc.Out.Bytes) / 1e6 / sc.WallSec
	}
}

// stages measures decode and encode per core over a sample of the hourly
// day's pages, with json.Valid over the same bytes as the floor.
func (b *bencher) stages() error {
	if b.hourSim == nil {
		return fmt.Errorf("the hourly simulator is not running")
	}
	defer b.hourSim.stop()
	tok, err := b.hourSim.token()
	if err != nil {
		return err
	}
	w := event.Window{Org: "org_1", Start: b.hourFrom, End: b.hourFrom.Add(24 * time.Hour)}
	ps, err := fetchPages(b.hourSim.base, tok, w, b.o.sampleN)
	if err != nil {
		return err
	}
	st, err := measureStages(ps, b.o.minCPU)
	if err != nil {
		return err
	}
	b.rep.Stages = &st
	for i := range b.rep.Syncs {
		sc := &b.rep.Syncs[i]
		sc.JSONMBps = float64(sc.Events) * (float64(ps.bytes) / float64(ps.events)) / 1e6 / sc.WallSec
	}
	return nil
}

// backfillRun is one `vaultsink backfill`.
type backfillRun struct {
	Concurrency int      `json:"concurrency"`
	RateLimit   float64  `json:"rate_limit"`
	Days        int      `json:"days"`
	Windows     int      `json:"windows"`
	Events      int64    `json:"events"`
	Requests    int      `json:"requests"`
	Run         childRun `json:"run"`
	// Rate-limit check, from the simulator's request log.
	MaxIn1s     int     `json:"max_requests_in_any_1s"`
	Allowed1s   int     `json:"allowed_in_1s"`
	MeanRate    float64 `json:"mean_requests_per_second"`
	BucketOK    bool    `json:"token_bucket_respected"`
	WorstExcess float64 `json:"worst_excess_requests"`
	AheadMs     float64 `json:"most_ms_ahead_of_bucket"` // before the jitter allowance
}

type backfillResult struct {
	LatencyMs int           `json:"latency_ms"`
	Rate      float64       `json:"sim_rate_per_hour"`
	Runs      []backfillRun `json:"runs"`
	Speedup   float64       `json:"speedup_c8_over_c1"`
}

var bfEventsRE = regexp.MustCompile(`; (\d+) events`)

func (b *bencher) backfill() error {
	horizon := time.Now().UTC().Add(-settle - 3*time.Minute)
	end := horizon.Truncate(24 * time.Hour)
	start := end.Add(-time.Duration(b.o.backfillDays) * 24 * time.Hour)
	s, err := startSim(b.simBin, filepath.Join(b.work, "sim-backfill"), "--from", start.Format(time.RFC3339), "--to", end.Format(time.RFC3339),
		"--rate", strconv.FormatFloat(b.o.bfRate, 'f', 1, 64), "--latency", "50ms", "-v")
	if err != nil {
		return err
	}
	defer s.stop()
	res := &backfillResult{LatencyMs: 50, Rate: b.o.bfRate}
	cases := []struct {
		conc int
		rl   float64
		days int
	}{{1, 0, b.o.backfillDays}, {8, 0, b.o.backfillDays}, {8, b.o.rateLimit, b.o.rlDays}}
	for i, c := range cases {
		dir := filepath.Join(b.work, "backfill", fmt.Sprintf("run-%d", i))
		from := end.Add(-time.Duration(c.days) * 24 * time.Hour)
		cfg, err := writeConfig(dir, s.base, s.tokens, from, "1h", c.rl)
		if err != nil {
			return err
		}
		off := fileSize(s.logPath)
		cr, err := runChild(nil, b.sinkBin, "backfill", "--config", cfg, "--org", "org_1",
			"--from", from.Format(time.RFC3339), "--to", end.Format(time.RFC3339), "--concurrency", strconv.Itoa(c.conc))
		if err != nil {
			return err
		}
		times, err := requestTimes(s.logPath, off)
		if err != nil {
			return err
		}
		br := backfillRun{Concurrency: c.conc, RateLimit: c.rl, Days: c.days, Windows: c.days * 24, Requests: len(times), Run: cr}
		if m := bfEventsRE.FindStringSubmatch(cr.stdout); m != nil {
			br.Events, _ = strconv.ParseInt(m[1], 10, 64)
		}
		if c.rl > 0 {
			br.checkRate(times, c.rl)
		}
		log.Printf("  backfill %d days concurrency %d rate_limit %g: %d requests, %d events in %.2fs", c.days, c.conc, c.rl, br.Requests, br.Events, cr.WallSec)
		os.RemoveAll(filepath.Join(dir, "out"))
		res.Runs = append(res.Runs, br)
	}
	res.Speedup = res.Runs[0].Run.WallSec / res.Runs[1].Run.WallSec
	b.rep.Backfill = res
	return nil
}

func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// requestTimes reads the arrival times of the events requests the
// simulator logged (-v) after byte offset off: log time minus duration.
func requestTimes(path string, off int64) ([]time.Time, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(off, 0); err != nil {
		return nil, err
	}
	var out []time.Time
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, `msg="events page"`) {
			continue
		}
		var ts time.Time
		var dur time.Duration
		for _, kv := range strings.Fields(line) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			switch k {
			case "time":
				ts, _ = time.Parse(time.RFC3339Nano, v)
			case "duration":
				dur, _ = time.ParseDuration(v)
			}
		}
		if !ts.IsZero() {
			out = append(out, ts.Add(-dur))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out, sc.Err()
}

// arrivalJitter is how much earlier than the token bucket allows a request
// may appear to arrive. The arrival times are when the simulator's handler
// started, so a request whose delivery or handler was delayed by a busy
// machine (eight walks decoding and encoding on two cores) shortens the
// span to the next ones. Runs of this check here saw up to 15 ms of it;
// 2 ms, the first tolerance (for the log's millisecond timestamps), failed
// one run in three with the same code. The limiter is also tested in
// source (TestWalkRateLimit), on the client's side.
const arrivalJitter = 20 * time.Millisecond

// checkRate verifies the token bucket the client promises (rate r, burst
// max(1,int(r))): any n consecutive requests span at least (n-burst)/r
// seconds, less arrivalJitter.
func (br *backfillRun) checkRate(ts []time.Time, r float64) {
	burst := max(1, int(r))
	br.Allowed1s = burst + int(r)
	br.BucketOK = true
	for i := range ts {
		n := 0
		for j := i; j < len(ts) && ts[j].Sub(ts[i]) < time.Second; j++ {
			n++
		}
		br.MaxIn1s = max(br.MaxIn1s, n)
		for j := i + burst; j < len(ts); j++ {
			span := ts[j].Sub(ts[i]).Seconds() + arrivalJitter.Seconds()
			excess := float64(j-i+1) - (float64(burst) + r*span)
			br.AheadMs = max(br.AheadMs, 1000*(excess/r+arrivalJitter.Seconds()))
			if excess > br.WorstExcess {
				br.WorstExcess = excess
			}
			if excess > 0 {
				br.BucketOK = false
			}
			if span*r > float64(len(ts)) {
				break
			}
		}
	}
	if len(ts) > 1 {
		br.MeanRate = float64(len(ts)-1) / ts[len(ts)-1].Sub(ts[0]).Seconds()
	}
}

// goBench runs the packages' own single-core benchmarks.
type goBench struct {
	Cmd   string   `json:"cmd"`
	Lines []string `json:"lines"`
}

func (b *bencher) goBenchmarks() error {
	cmds := [][]string{
		{"test", "-run", "^$", "-bench", "^(BenchmarkDecodePage|BenchmarkJSONValidFloor)$", "-cpu", "1", "-benchtime", "2s", "./source/"},
		{"test", "-run", "^$", "-bench", "^BenchmarkEncode$/codec=zstd-1/rg=32k", "-cpu", "1", "-benchtime", "3x", "./sinks/pqenc/"},
	}
	for _, args := range cmds {
		cmd := exec.Command("go", args...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, tail(string(out)))
		}
		g := goBench{Cmd: "go " + strings.Join(args, " ")}
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "Benchmark") {
				g.Lines = append(g.Lines, strings.Join(strings.Fields(l), " "))
			}
		}
		b.rep.GoBench = append(b.rep.GoBench, g)
	}
	return nil
}

// medianRun is the run with the median overlap (the first of the two
// middle ones for an even count).
func (sc *syncScenario) medianRun() childRun {
	if len(sc.Runs) == 0 {
		return childRun{}
	}
	runs := slices.Clone(sc.Runs)
	slices.SortStableFunc(runs, func(a, b childRun) int { return cmp.Compare(a.overlap(), b.overlap()) })
	return runs[(len(runs)-1)/2]
}
