package pipeclock

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// step makes the clock read t0+at(ms) on each call of set.
func fakeClock(t *testing.T) (set func(ms int)) {
	t.Helper()
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	cur := t0
	now = func() time.Time { return cur }
	t.Cleanup(func() { now = time.Now })
	return func(ms int) { cur = t0.Add(time.Duration(ms) * time.Millisecond) }
}

// step is one stage entry or exit at a time in ms: name tells apart two
// goroutines in the same stage.
type step struct {
	ms    int
	name  string
	stage Stage
	begin bool
}

// play runs the steps on the fake clock.
func play(at func(int), steps []step) {
	ends := map[string]func(){}
	for _, s := range steps {
		at(s.ms)
		if s.begin {
			ends[s.name] = Begin(s.stage)
		} else {
			ends[s.name]()
		}
	}
}

func TestTotals(t *testing.T) {
	at := fakeClock(t)
	before := Read()
	// decode 0-40 ms and 100-130 ms; encode 20-90 ms, and two encoders
	// (two orgs) 120-150 and 125-140: decode 70, encode 100, both 20+10.
	play(at, []step{
		{0, "d", Decode, true}, {20, "e", Encode, true}, {40, "d", Decode, false}, {90, "e", Encode, false},
		{100, "d", Decode, true}, {120, "e1", Encode, true}, {125, "e2", Encode, true}, {130, "d", Decode, false},
		{140, "e2", Encode, false}, {150, "e1", Encode, false},
	})
	at(400) // idle time counts for nothing

	got := Read().Sub(before)
	want := Totals{Decode: 70 * time.Millisecond, Encode: 100 * time.Millisecond, Both: 30 * time.Millisecond}
	if got != want {
		t.Fatalf("totals = %+v, want %+v", got, want)
	}
	if o := got.Overlap(); o < 0.428 || o > 0.429 { // 30 of decode's 70 ms
		t.Fatalf("overlap = %v, want 3/7", o)
	}
}

func TestReadWhileBusy(t *testing.T) {
	at := fakeClock(t)
	at(0)
	before := Read()
	end := Begin(Encode)
	at(50)
	if got := Read().Sub(before); got.Encode != 50*time.Millisecond || got.Decode != 0 || got.Both != 0 {
		t.Fatalf("a running stage counts up to now: %+v", got)
	}
	end()
}

func TestOverlapAlternating(t *testing.T) {
	at := fakeClock(t)
	before := Read()
	for i := range 10 { // strictly alternating stages never overlap
		at(20 * i)
		end := Begin(Stage(i % 2))
		at(20*i + 15)
		end()
	}
	got := Read().Sub(before)
	if got.Both != 0 || got.Overlap() != 0 || got.Decode != 75*time.Millisecond || got.Encode != 75*time.Millisecond {
		t.Fatalf("alternating: %+v overlap %v", got, got.Overlap())
	}
	if (Totals{}).Overlap() != 0 {
		t.Fatal("overlap of nothing must be 0")
	}
}

func TestCollector(t *testing.T) {
	at := fakeClock(t) // frozen between steps, so Read and Gather agree
	play(at, []step{{0, "d", Decode, true}, {10, "e", Encode, true}, {30, "d", Decode, false}, {30, "e", Encode, false}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(Collector)
	tot := Read()
	want := fmt.Sprintf(`# HELP vaultsink_pipeline_busy_seconds_total %s
# TYPE vaultsink_pipeline_busy_seconds_total counter
vaultsink_pipeline_busy_seconds_total{stage="decode"} %v
vaultsink_pipeline_busy_seconds_total{stage="encode"} %v
# HELP vaultsink_pipeline_overlap_seconds_total %s
# TYPE vaultsink_pipeline_overlap_seconds_total counter
vaultsink_pipeline_overlap_seconds_total %v
`, busyHelp, tot.Decode.Seconds(), tot.Encode.Seconds(), overlapHelp, tot.Both.Seconds())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// TestLine: the line sync prints under its summary.
func TestLine(t *testing.T) {
	in := Totals{Decode: 1210 * time.Millisecond, Encode: 1880 * time.Millisecond, Both: 750 * time.Millisecond}
	if got, want := in.Line(), "pipeline: decode busy 1.21s, encode busy 1.88s, both at once 0.75s (62% of the shorter)"; got != want {
		t.Fatalf("Line() = %q, want %q", got, want)
	}
}
