package main

import (
	"fmt"
	"strings"
	"testing"
)

func TestParsePeerLine(t *testing.T) {
	for _, tc := range []struct {
		line, err string
		want      sideRun
		duckdb    string
	}{
		{line: "events=1000007 fetch_seconds=1.250 copy_seconds=2.500 fetch_cpu_seconds=1.5 copy_cpu_seconds=3.25 ndjson_bytes=414000000 duckdb=v1.5.6\n",
			want: sideRun{Events: 1000007, FetchSec: 1.25, CopySec: 2.5, FetchCPU: 1.5, CopyCPU: 3.25, NDJSONBytes: 414000000}, duckdb: "v1.5.6"},
		{line: "duckdb=v1 ndjson_bytes=3 copy_cpu_seconds=0 fetch_cpu_seconds=0 copy_seconds=0 fetch_seconds=0.5 events=2",
			want: sideRun{Events: 2, FetchSec: 0.5, NDJSONBytes: 3}, duckdb: "v1"},
		{line: "events=12 fetch_seconds=1 copy_seconds=2 fetch_cpu_seconds=1 copy_cpu_seconds=2 duckdb=v1", err: "no ndjson_bytes="},
		{line: "events=1e6 fetch_seconds=1 copy_seconds=2 fetch_cpu_seconds=1 copy_cpu_seconds=2 ndjson_bytes=3 duckdb=v1", err: "field events"},
		{line: "", err: "no "},
	} {
		t.Run(tc.line, func(t *testing.T) {
			var r sideRun
			duckdb, err := parsePeerLine(tc.line, &r)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r != tc.want || duckdb != tc.duckdb {
				t.Fatalf("got %+v %q, want %+v %q", r, duckdb, tc.want, tc.duckdb)
			}
		})
	}
}

func TestParseCountAndJudge(t *testing.T) {
	tr := truth{Count: 3, Digest: "abc"}
	for _, tc := range []struct {
		line  string
		exact bool
	}{
		{"rows=3 distinct=3 digest=abc\n", true},
		{"rows=4 distinct=3 digest=abc", false}, // a duplicate
		{"rows=2 distinct=2 digest=abc", false}, // one lost
		{"rows=3 distinct=3 digest=abd", false}, // the same count, other ids
	} {
		c, err := parseCount(tc.line)
		if err != nil {
			t.Fatalf("%q: %v", tc.line, err)
		}
		c.judge(tr)
		if c.Exact != tc.exact {
			t.Errorf("%q: exact %v, want %v", tc.line, c.Exact, tc.exact)
		}
	}
	if _, err := parseCount("rows=3 distinct=x digest=abc"); err == nil {
		t.Error("a malformed count parsed")
	}
}

// mkRun is a sideRun of 1M events with the given wall seconds, CPU seconds,
// peak RSS and output bytes.
func mkRun(pair int, wall, cpu, rss float64, bytes int64, exact bool) sideRun {
	return sideRun{Pair: pair, Events: 1_000_000, Bytes: bytes, SimCPUSec: 0.5,
		Run: childRun{WallSec: wall, UserSec: cpu, MaxRSSMiB: rss}, Check: idCheck{Rows: 1_000_000, Distinct: 1_000_000, Exact: exact}}
}

func TestSideBySideRatios(t *testing.T) {
	sb := sideBySide{
		Vaultsink: sideSummary{Runs: []sideRun{mkRun(0, 2, 3, 90, 55e6, true), mkRun(1, 2.5, 3, 92, 55e6, true), mkRun(2, 1.6, 2.8, 88, 55e6, true)}},
		Script:    sideSummary{Runs: []sideRun{mkRun(0, 4, 6, 1300, 52e6, true), mkRun(1, 4, 5.5, 1250, 52e6, false), mkRun(2, 4.8, 5, 1350, 52e6, true)}},
	}
	sb.Script.Runs[1].First, sb.Script.Runs[1].FetchSec, sb.Script.Runs[1].CopySec = true, 1.5, 2.4
	sb.summarize()
	near := func(name string, got, want float64) {
		t.Helper()
		if d := got - want; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("vaultsink events/s", sb.Vaultsink.EventsPerSec, 500_000)
	near("script events/s", sb.Script.EventsPerSec, 250_000)
	// Pairs: 2/4, 2.5/4, 1.6/4.8 in wall time.
	near("speed of medians", sb.Speed.OfMedians, 2)
	near("speed paired min", sb.Speed.Min, 4/2.5)
	near("speed paired max", sb.Speed.Max, 4.8/1.6)
	near("cpu of medians", sb.CPU.OfMedians, 5.5/3)
	near("cpu paired min", sb.CPU.Min, 5/2.8)
	near("cpu paired max", sb.CPU.Max, 2)
	near("rss of medians", sb.RSS.OfMedians, 1300.0/90)
	near("size of medians", sb.Size.OfMedians, 52.0/55)
	if sb.Vaultsink.ExactRuns != 3 || sb.Script.ExactRuns != 2 {
		t.Errorf("exact runs %d and %d, want 3 and 2", sb.Vaultsink.ExactRuns, sb.Script.ExactRuns)
	}
	near("script sim CPU per 1M", sb.Script.SimCPUPerM, 0.5)

	rep := report{Side: &sb}
	md := rep.markdown()
	for _, want := range []string{
		"## Side by side: vaultsink and a DuckDB script",
		"| events/s | 500000 | 250000 | 2.00x (1.60–3.00) |",
		fmt.Sprintf("| CPU s per 1M events | 3.00 | 5.50 | %.2fx (%.2f–2.00) |", 5.5/3, 5/2.8),
		"| peak RSS MiB | 90.0 | 1300.0 | 14.44x (",
		"| Parquet bytes/event | 55.0 | 52.0 | 0.95x (0.95–0.95) |",
		"| output exact (every id once) | 3 of 3 runs | 2 of 3 runs | |",
		"| 1 | DuckDB script | 1st | 4.00 | 5.50 | 0.00 | 1250.0 | 250000 | 5.50 | 52.0 | 1.50 | 2.40 | 1000000 | 1000000 | **no** |",
		"| 1 | vaultsink | 2nd | 2.50 | 3.00 | 0.00 | 92.0 | 400000 | 3.00 | 55.0 | - | - | 1000000 | 1000000 | yes |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}

	skipped := report{Side: &sideBySide{Skipped: "no cgo"}}
	if md := skipped.markdown(); !strings.Contains(md, "Not measured: no cgo") || strings.Contains(md, "advantage") {
		t.Errorf("a skipped comparison reads:\n%s", md)
	}
}
