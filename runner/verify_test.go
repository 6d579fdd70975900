package runner

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/sinks"
)

func TestIDSample(t *testing.T) {
	var s IDSample
	for _, id := range []string{"g", "c", "a", "f", "b", "e", "d", "a"} {
		s.add(id)
	}
	if s.N != 8 || !slices.Equal(s.First, []string{"a", "b", "c", "d", "e"}) {
		t.Fatalf("sample %+v", s)
	}
	if got := s.String(); got != "first 5 of 8: a, b, c, d, e" {
		t.Fatalf("String() = %q", got)
	}
	s = IDSample{}
	s.add("y")
	s.add("x")
	if got := s.String(); got != "2: x, y" {
		t.Fatalf("String() = %q", got)
	}
}

func TestRawID(t *testing.T) {
	aliases := []string{"id", "event_id", "uuid"}
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{`{"id":"evt_1","event_id":"other"}`, "evt_1", true},
		{`{"event_id":"evt_2","uuid":"u"}`, "evt_2", true},
		{`{"id":null,"event_id":"evt_3"}`, "evt_3", true},
		{`{"id":"","uuid":"u4"}`, "u4", true},
		{`{"id":12345}`, "12345", true},
		{`{"id":{"nested":1}}`, "", false},
		{`{"name":"x"}`, "", false},
		{`[1,2]`, "", false},
		{`not json`, "", false},
	} {
		got, ok := rawID(tc.raw, aliases)
		if got != tc.want || ok != tc.ok {
			t.Errorf("rawID(%s) = %q, %v; want %q, %v", tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

// TestVerifyUnits: the findings made from the listing alone.
func TestVerifyUnits(t *testing.T) {
	day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	win := func(h, n int) event.Window {
		return event.Window{Org: "acme", Start: day.Add(time.Duration(h) * time.Hour), End: day.Add(time.Duration(h+n) * time.Hour)}
	}
	unit := func(w event.Window) sinks.UnitInfo {
		return sinks.UnitInfo{Key: sinks.ObjectKey(w), Window: w, KeyWindow: w, Rows: 10}
	}
	moved := unit(win(5, 1))
	moved.Window = win(6, 1)
	unaligned := win(7, 1)
	unaligned.Start, unaligned.End = unaligned.Start.Add(30*time.Minute), unaligned.End.Add(30*time.Minute)
	foreign := unit(win(12, 1))
	foreign.Window.Org = "other"
	infos := []sinks.UnitInfo{
		unit(win(1, 1)), unit(win(2, 1)), unit(win(1, 2)), // a 2h unit over two 1h units
		moved, // key 05:00, footer 06:00
		{Key: sinks.ObjectKey(unaligned), Window: unaligned, KeyWindow: unaligned},
		{Key: "org_id=acme/.events-x.parquet.tmp-1", Hidden: true, Err: errors.New("truncated")},
		{Key: "org_id=acme/notes.txt", Err: errors.New("not parquet")},
		{Key: "org_id=acme/raw.parquet", Rows: 3}, // no window anywhere
		unit(win(30, 1)), unit(win(30, 2)), unit(win(31, 1)), // overlapping, but outside the range verified
		foreign,
	}
	e := New(Options{})
	var sum VerifySummary
	lo, hi := day.Add(-24*time.Hour), day.Add(48*time.Hour)
	units := e.verifyUnits("acme", infos, lo, hi, time.Hour, day, day.Add(24*time.Hour), &sum)
	kinds := map[string][]string{}
	for _, f := range sum.Findings {
		kinds[f.Kind] = append(kinds[f.Kind], f.Unit)
		if f.Info != (f.Kind == FindingHidden) {
			t.Errorf("finding %+v: info %v", f, f.Info)
		}
	}
	want := map[string][]string{
		FindingOverlap:     {sinks.ObjectKey(win(1, 2))},
		FindingSize:        {sinks.ObjectKey(win(1, 2)), sinks.ObjectKey(unaligned)},
		FindingKeyMismatch: {moved.Key},
		FindingHidden:      {"org_id=acme/.events-x.parquet.tmp-1"},
		FindingUnreadable:  {"org_id=acme/notes.txt"},
		FindingNoWindow:    {"org_id=acme/raw.parquet"},
		FindingOtherOrg:    {foreign.Key},
	}
	for k, keys := range want {
		slices.Sort(keys)
		got := slices.Sorted(slices.Values(kinds[k]))
		if !slices.Equal(got, keys) {
			t.Errorf("%s findings for %v, want %v", k, got, keys)
		}
	}
	for k := range kinds {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s findings: %v", k, kinds[k])
		}
	}
	// Read are the units without error and not hidden; none is a table.
	if len(units) != len(infos)-2 {
		t.Fatalf("%d units to read, want %d", len(units), len(infos)-2)
	}
	for _, u := range units {
		if u.table {
			t.Fatalf("%s taken for a table", u.Key)
		}
	}

	// A sink without units lists its table over exactly the range asked.
	table := sinks.UnitInfo{Key: "p.d.t", Window: event.Window{Org: "acme", Start: lo, End: hi}}
	sum = VerifySummary{}
	units = e.verifyUnits("acme", []sinks.UnitInfo{table}, lo, hi, time.Hour, day, day.Add(24*time.Hour), &sum)
	if len(units) != 1 || !units[0].table || len(sum.Findings) != 0 {
		t.Fatalf("table: units %+v, findings %+v", units, sum.Findings)
	}
}
