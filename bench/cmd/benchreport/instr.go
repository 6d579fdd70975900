package main

import (
	"fmt"
	"log"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Instructions per event: a figure this shared machine does not move.
//
// CPU seconds per event drift by a third between hours here (the same
// binary measured 3.5 and 5.0 CPU-s per million on two days) while the
// work done is the same. cachegrind counts the instructions vaultsink
// executes instead: at GOMAXPROCS=1 (no spinning idle threads, one
// garbage-collection schedule) two runs of the same binary agree within
// ~1% (the report prints their spread), so commits can be compared
// across days. Instructions are not
// time (decoding runs at a higher IPC than compression), and the figure
// covers vaultsink only, not the simulator.

type instrResult struct {
	Events       int64     `json:"events"`
	PerEvent     float64   `json:"instructions_per_event"`
	Runs         []float64 `json:"instructions_per_event_runs"`
	Spread       float64   `json:"spread"` // (max-min)/min of the runs
	ValgrindSecs float64   `json:"wall_seconds_per_run"`
	Skipped      string    `json:"skipped,omitempty"`
}

var irefsRE = regexp.MustCompile(`I\s+refs:\s+([0-9,]+)`)

func (b *bencher) instructions() error {
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		b.rep.Instr = &instrResult{Skipped: "valgrind is not installed (`make bench` installs it with apt-get where it can)"}
		log.Printf("  skipped: no valgrind")
		return nil
	}
	horizon := time.Now().UTC().Add(-settle - 3*time.Minute)
	to := horizon.Truncate(time.Hour)
	from := to.Add(-24 * time.Hour)
	rate, err := calibrate(float64(b.o.instrEvents), from, to)
	if err != nil {
		return err
	}
	s, err := startSim(b.simBin, filepath.Join(b.work, "sim-instr"), "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339), "--rate", strconv.FormatFloat(rate, 'f', 1, 64))
	if err != nil {
		return err
	}
	defer s.stop()
	res := &instrResult{}
	var wall float64
	for r := range 2 {
		cfg, err := writeConfig(filepath.Join(b.work, "instr", fmt.Sprintf("run-%d", r)), s.base, s.tokens, from, "1h", 0)
		if err != nil {
			return err
		}
		cr, err := runChild([]string{"GOMAXPROCS=1"}, vg, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", b.sinkBin, "sync", "--config", cfg, "--output", "json")
		if err != nil {
			return err
		}
		m := irefsRE.FindStringSubmatch(cr.stderr)
		_, n, everr := syncEvents(cr.stdout)
		if m == nil || everr != nil {
			return fmt.Errorf("no instruction or event count from cachegrind's run:\n%s\n%s", tail(cr.stdout), tail(cr.stderr))
		}
		ir, _ := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
		if n == 0 {
			return fmt.Errorf("cachegrind's sync wrote no events: %s", cr.stdout)
		}
		res.Events = n
		res.Runs = append(res.Runs, float64(ir)/float64(n))
		wall += cr.WallSec
		log.Printf("  run %d: %d events, %.0f instructions per event (%.0fs under cachegrind)", r, n, res.Runs[r], cr.WallSec)
	}
	lo, hi := min(res.Runs[0], res.Runs[1]), max(res.Runs[0], res.Runs[1])
	res.PerEvent, res.Spread, res.ValgrindSecs = (lo+hi)/2, (hi-lo)/lo, wall/2
	b.rep.Instr = res
	return nil
}

func (r *report) instrMarkdown(p func(string, ...any)) {
	in := r.Instr
	if in == nil {
		return
	}
	p("\n## Instructions per event\n\n")
	if in.Skipped != "" {
		p("Not measured: %s.\n", in.Skipped)
		return
	}
	p("`valgrind --tool=cachegrind` counting the instructions of `GOMAXPROCS=1 vaultsink sync` over a %d-event hourly day (vaultsink alone, not the simulator), two runs: **%.0f instructions per event** (runs %.0f and %.0f, %.2f%% apart; %.0f s each under cachegrind). Unlike the CPU seconds above, this does not move with the shared machine's speed, so it compares commits across days; it is not time (decoding runs at a higher IPC than compression).\n",
		in.Events, in.PerEvent, in.Runs[0], in.Runs[1], 100*in.Spread, in.ValgrindSecs)
}
