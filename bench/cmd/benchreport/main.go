// Command benchreport is vaultsink's end-to-end benchmark (`make bench`). It
// runs the real binaries built by `make build` (bin/vaultsim serving a
// generated history on loopback, bin/vaultsink syncing it into zstd Parquet
// on local disk), measures vaultsink's own wall time, CPU and peak RSS from
// wait4's rusage, measures the floors of this machine in the same run
// (encoding/json.Valid over the same page bytes, sequential disk writes with
// fsync), runs a DuckDB script (bench/cmd/duckpeer) on the same day in
// alternation with vaultsink, and writes REPORT.md and report.json into -out.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"
)

type options struct {
	out, bin     string
	events       int
	runs         int
	backfillDays int
	bfRate       float64
	rlDays       int
	rateLimit    float64
	sampleN      int
	instrEvents  int
	duckRuns     int
	minCPU       time.Duration
	goBench      bool
	keep         bool
	only         string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "bench", "directory for REPORT.md and report.json")
	flag.StringVar(&o.bin, "bin", "bin", "directory holding vaultsim and vaultsink (make build)")
	flag.IntVar(&o.events, "events", 1_000_000, "events in the synced day")
	flag.IntVar(&o.runs, "runs", 3, "runs of each sync scenario (the median is reported)")
	flag.IntVar(&o.backfillDays, "backfill-days", 30, "days of the backfill scenario")
	flag.Float64Var(&o.bfRate, "backfill-rate", 2000, "simulator events/hour of the backfill scenario")
	flag.IntVar(&o.rlDays, "ratelimit-days", 3, "days of the rate-limited backfill")
	flag.Float64Var(&o.rateLimit, "rate-limit", 10, "source.rate_limit (requests/s) of the rate-limited backfill")
	flag.IntVar(&o.instrEvents, "instr-events", 240_000, "events in the day synced under cachegrind for the instruction count")
	flag.IntVar(&o.duckRuns, "duck-runs", 5, "runs of each side of the side-by-side with the DuckDB script (0: none)")
	flag.IntVar(&o.sampleN, "sample-pages", 64, "pages sampled for the per-core stage figures")
	flag.DurationVar(&o.minCPU, "stage-cpu", 2*time.Second, "CPU time spent measuring each stage")
	flag.BoolVar(&o.goBench, "gobench", true, "also run the packages' Go benchmarks")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.only, "only", "", "run one part only: stages, sync, sidebyside, backfill, instructions (no report written)")
	flag.StringVar(&profileDir, "cpuprofile", "", "write CPU profiles of the decode and encode stages into this directory")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if err := run(o); err != nil {
		log.Fatalf("benchreport: %v", err)
	}
}

// setupOnly: the part run alone needs the hourly simulator that the sync
// step starts, not the sync scenarios.
func (o options) setupOnly() bool { return o.only == "stages" || o.only == "sidebyside" }

func run(o options) error {
	for _, b := range []string{"vaultsim", "vaultsink"} {
		if _, err := os.Stat(filepath.Join(o.bin, b)); err != nil {
			return fmt.Errorf("%s not built (run make build): %w", b, err)
		}
	}
	simBin, _ := filepath.Abs(filepath.Join(o.bin, "vaultsim"))
	sinkBin, _ := filepath.Abs(filepath.Join(o.bin, "vaultsink"))
	work, err := os.MkdirTemp("", "vaultsink-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		log.Printf("work directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	began := time.Now()
	rep := &report{Date: began.UTC().Format(time.RFC3339), Machine: machineInfo(), Params: o.params()}
	rep.LoadStart = loadAvg()
	b := &bencher{o: o, simBin: simBin, sinkBin: sinkBin, work: work, rep: rep}
	defer func() {
		if b.hourSim != nil {
			b.hourSim.stop()
		}
	}()
	steps := []struct {
		name string
		fn   func() error
	}{
		{"disk", b.disk},
		{"sync", b.syncScenarios},
		// Right after the sync scenarios: it uses their warmed hourly
		// simulator, and its children must start while this process is
		// small (below).
		{"sidebyside", b.sideBySide},
		// Backfill before stages: Linux carries the parent's peak RSS into a
		// vfork+exec'd child's ru_maxrss, and the stage sample makes this
		// process large. Children must start while it is still small.
		{"backfill", b.backfill},
		{"instructions", b.instructions},
		{"stages", b.stages},
		{"gobench", b.goBenchmarks},
	}
	for _, s := range steps {
		if o.only != "" && o.only != s.name && !(o.setupOnly() && s.name == "sync") {
			continue
		}
		if s.name == "gobench" && !o.goBench {
			continue
		}
		t0 := time.Now()
		log.Printf("%s ...", s.name)
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		log.Printf("%s done in %s (load %s)", s.name, time.Since(t0).Round(time.Second), loadAvg())
	}
	rep.LoadEnd = loadAvg()
	rep.DurationSec = time.Since(began).Seconds()
	rep.evaluate()
	if o.only != "" {
		fmt.Print(rep.markdown())
		return nil
	}
	return rep.write(o.out)
}
