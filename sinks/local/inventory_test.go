package local

import (
	"bytes"
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

// parquetUnit encodes evs as a unit whose footer records meta, whatever
// the events' timestamps.
func parquetUnit(t *testing.T, meta event.Window, evs []sinktest.Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	var opts pqenc.Options
	opts.SetDefaults()
	w, err := pqenc.NewWriter(&buf, pqenc.Meta{Window: meta, Version: "test"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec := sinktest.Batch(memory.DefaultAllocator, evs)
	defer rec.Release()
	if err := w.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o640); err != nil {
		t.Fatal(err)
	}
}

// TestInventory: Units lists every file of the org near the range, under
// any key, with what its footer and its key say; UnitRows reads a unit's
// ids and timestamps; QuarantinedIn selects records by their window.
func TestInventory(t *testing.T) {
	ctx := context.Background()
	s, _ := newSink(t, Config{})
	hour := func(h int) event.Window { return sinktest.Window("acme", h) }
	day := event.Window{Org: "acme", Start: hour(0).Start, End: hour(24).Start}

	// Two units written by the sink, one with quarantined records.
	sinktest.WriteWindow(t, s, hour(10), sinktest.IDs("a", 0, 100), 50)
	u, err := s.Open(ctx, hour(11))
	if err != nil {
		t.Fatal(err)
	}
	evs := sinktest.Events(hour(11), sinktest.IDs("b", 0, 40))
	rec := sinktest.Batch(memory.DefaultAllocator, evs)
	if err := u.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	rec.Release()
	for i := range 2 {
		q := event.Quarantined{Org: "acme", Window: hour(11).Range(), Page: i + 1, Reason: "timestamp outside window", Raw: `{"id":"q` + string(rune('0'+i)) + `"}`}
		if err := u.Quarantine(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := u.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// A day's unit over the hours; the 10:00 unit copied under 15:00's key;
	// a unit whose rows lie after the window its footer records; a temp
	// file; a file that is no Parquet; a unit far away; another org's.
	writeFile(t, s.Path(day), parquetUnit(t, day, sinktest.Events(day, sinktest.IDs("d", 0, 30))))
	a, err := os.ReadFile(s.Path(hour(10)))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, s.Path(hour(15)), a)
	outside := sinktest.Events(hour(13), sinktest.IDs("o", 0, 10))
	writeFile(t, s.Path(hour(12)), parquetUnit(t, hour(12), outside))
	temp := filepath.Join(filepath.Dir(s.Path(hour(10))), ".events-x.parquet.tmp-1-2")
	writeFile(t, temp, a[:len(a)/2])
	notes := filepath.Join(filepath.Dir(s.Path(hour(10))), "notes.txt")
	writeFile(t, notes, []byte("not parquet"))
	sinktest.WriteWindow(t, s, hour(24*9), sinktest.IDs("far", 0, 5), 5)
	sinktest.WriteWindow(t, s, sinktest.Window("other", 10), sinktest.IDs("x", 0, 5), 5)

	units, err := s.Units(ctx, "acme", day.Start, day.End)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]sinks.UnitInfo{}
	for _, u := range units {
		got[u.Key] = u
	}
	key := func(w event.Window) string { return sinks.ObjectKey(w) }
	rel := func(p string) string { r, _ := filepath.Rel(s.root, p); return filepath.ToSlash(r) }
	want := []string{key(hour(10)), key(hour(11)), key(day), key(hour(15)), key(hour(12)), rel(temp), rel(notes)}
	if len(got) != len(want) {
		t.Fatalf("Units listed %d units, want %d: %v", len(got), len(want), slices.Sorted(maps.Keys(got)))
	}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Fatalf("Units did not list %s", k)
		}
	}
	check := func(k string, window, keyWindow event.Window, rows int64, hidden, bad bool) {
		t.Helper()
		u := got[k]
		if u.Window != window || u.KeyWindow != keyWindow || u.Rows != rows || u.Hidden != hidden || (u.Err != nil) != bad {
			t.Errorf("%s: %+v; want window %s, key window %s, %d rows, hidden %v, error %v", k, u, window, keyWindow, rows, hidden, bad)
		}
	}
	check(key(hour(10)), hour(10), hour(10), 100, false, false)
	check(key(hour(11)), hour(11), hour(11), 40, false, false)
	check(key(day), day, day, 30, false, false)
	check(key(hour(15)), hour(10), hour(15), 100, false, false) // the key names 15:00, the footer 10:00
	check(key(hour(12)), hour(12), hour(12), 10, false, false)
	check(rel(temp), event.Window{}, event.Window{}, 0, true, true)
	check(rel(notes), event.Window{}, event.Window{}, 0, false, true)

	// A range that meets only the copied unit's key window lists it too,
	// and the day's unit, but not the 10:00 unit.
	units, err = s.Units(ctx, "acme", hour(15).Start, hour(16).Start)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range units {
		if u.Err == nil {
			keys = append(keys, u.Key)
		}
	}
	slices.Sort(keys)
	if w := []string{key(day), key(hour(15))}; !slices.Equal(keys, w) {
		t.Fatalf("Units of [15:00,16:00): %v, want %v", keys, w)
	}

	// UnitRows: every row's id and timestamp, as written.
	var ids []string
	err = s.UnitRows(ctx, got[key(hour(12))], func(id string, ts time.Time) error {
		i := slices.IndexFunc(outside, func(e sinktest.Event) bool { return e.ID == id })
		if i < 0 || !outside[i].Time.Equal(ts) {
			t.Errorf("row %s at %s is not one written", id, ts)
		}
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(outside) {
		t.Fatalf("UnitRows: %d rows, want %d", len(ids), len(outside))
	}
	if err := s.UnitRows(ctx, got[rel(notes)], func(string, time.Time) error { return nil }); err == nil {
		t.Fatal("UnitRows of a file that is no Parquet did not fail")
	}
	if err := s.UnitRows(ctx, sinks.UnitInfo{Key: "../escape.parquet"}, func(string, time.Time) error { return nil }); err == nil {
		t.Fatal("UnitRows read a key outside the root")
	}

	// QuarantinedIn selects by the window the records name.
	var qs []event.Quarantined
	collect := func(q event.Quarantined) error { qs = append(qs, q); return nil }
	if err := s.QuarantinedIn(ctx, "acme", hour(11).Start, hour(12).Start, collect); err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Raw != `{"id":"q0"}` || qs[1].Page != 2 || qs[0].Window != hour(11).Range() {
		t.Fatalf("QuarantinedIn [11:00,12:00): %+v", qs)
	}
	qs = nil
	if err := s.QuarantinedIn(ctx, "acme", hour(10).Start, hour(11).Start, collect); err != nil {
		t.Fatal(err)
	}
	if err := s.QuarantinedIn(ctx, "other", day.Start, day.End, collect); err != nil {
		t.Fatal(err)
	}
	if len(qs) != 0 {
		t.Fatalf("QuarantinedIn of windows without records: %+v", qs)
	}

	// An org without units has none, and no error.
	if units, err := s.Units(ctx, "nobody", day.Start, day.End); err != nil || len(units) != 0 {
		t.Fatalf("Units of an org without any: %v, %v", units, err)
	}
}
