package s3_test

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	s3sink "github.com/vaultsink/vaultsink/sinks/s3"
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

// TestInventory: Units lists the org's objects near the range, under any
// key, with what their footers (ranged GETs) and keys say, across several
// ListObjectsV2 pages; UnitRows reads a unit's ids and timestamps;
// QuarantinedIn selects records by their window.
func TestInventory(t *testing.T) {
	t.Cleanup(s3sink.SetListMaxKeysForTest(2)) // several pages for a handful of objects
	for name, start := range servers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := start(t)
			s := newSink(t, srv, nil)
			ctx := context.Background()
			hour := func(h int) event.Window { return sinktest.Window("acme", h) }
			day := event.Window{Org: "acme", Start: hour(0).Start, End: hour(24).Start}
			put := func(key string, b []byte) {
				t.Helper()
				_, err := s.Client().PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: aws.String(key), Body: bytes.NewReader(b)})
				if err != nil {
					t.Fatalf("put %s: %v", key, err)
				}
			}
			prefix := "vaultterm/events/"

			if _, err := writeWindow(t, s, hour(10), sinktest.IDs("a", 0, 100), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := writeWindow(t, s, hour(11), sinktest.IDs("b", 0, 40), 3); err != nil {
				t.Fatal(err)
			}
			put(prefix+sinks.ObjectKey(day), parquetUnit(t, day, sinktest.Events(day, sinktest.IDs("d", 0, 30))))
			a := getObject(t, s.Client(), srv.Bucket, s.Key(hour(10)))
			put(prefix+sinks.ObjectKey(hour(15)), a) // the 10:00 unit under 15:00's key
			outside := sinktest.Events(hour(13), sinktest.IDs("o", 0, 10))
			put(prefix+sinks.ObjectKey(hour(12)), parquetUnit(t, hour(12), outside))
			hidden := "org_id=acme/date=2026-06-01/hour=10/_tmp/part-0.parquet"
			put(prefix+hidden, a)
			notes := "org_id=acme/notes.txt"
			put(prefix+notes, []byte("not parquet"))
			if _, err := writeWindow(t, s, hour(24*9), sinktest.IDs("far", 0, 5), 0); err != nil {
				t.Fatal(err)
			}
			// A far key whose object would fail to read: never fetched.
			put(prefix+sinks.ObjectKey(hour(24*20)), []byte("garbage"))
			if _, err := writeWindow(t, s, sinktest.Window("other", 10), sinktest.IDs("x", 0, 5), 0); err != nil {
				t.Fatal(err)
			}

			units, err := s.Units(ctx, "acme", day.Start, day.End)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]sinks.UnitInfo{}
			for _, u := range units {
				got[u.Key] = u
			}
			key := sinks.ObjectKey
			want := []string{key(hour(10)), key(hour(11)), key(day), key(hour(15)), key(hour(12)), hidden, notes}
			slices.Sort(want)
			if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want) {
				t.Fatalf("Units listed\n%v\nwant\n%v", keys, want)
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
			check(key(hour(15)), hour(10), hour(15), 100, false, false)
			check(key(hour(12)), hour(12), hour(12), 10, false, false)
			check(hidden, hour(10), event.Window{}, 100, true, false)
			check(notes, event.Window{}, event.Window{}, 0, false, true)

			var n int
			err = s.UnitRows(ctx, got[key(hour(12))], func(id string, ts time.Time) error {
				i := slices.IndexFunc(outside, func(e sinktest.Event) bool { return e.ID == id })
				if i < 0 || !outside[i].Time.Equal(ts) {
					t.Errorf("row %s at %s is not one written", id, ts)
				}
				n++
				return nil
			})
			if err != nil || n != len(outside) {
				t.Fatalf("UnitRows: %d rows (want %d), %v", n, len(outside), err)
			}
			if err := s.UnitRows(ctx, sinks.UnitInfo{Key: "org_id=acme/gone.parquet"}, func(string, time.Time) error { return nil }); err == nil {
				t.Fatal("UnitRows of an object that does not exist did not fail")
			}

			var qs []event.Quarantined
			collect := func(q event.Quarantined) error { qs = append(qs, q); return nil }
			if err := s.QuarantinedIn(ctx, "acme", hour(11).Start, hour(12).Start, collect); err != nil {
				t.Fatal(err)
			}
			if len(qs) != 3 || qs[2].Page != 2 || qs[0].Window != hour(11).Range() || qs[0].Raw != `{"id":"q"}` {
				t.Fatalf("QuarantinedIn [11:00,12:00): %+v", qs)
			}
			qs = nil
			if err := s.QuarantinedIn(ctx, "acme", hour(10).Start, hour(11).Start, collect); err != nil {
				t.Fatal(err)
			}
			if len(qs) != 0 {
				t.Fatalf("QuarantinedIn [10:00,11:00): %+v", qs)
			}
			if units, err := s.Units(ctx, "nobody", day.Start, day.End); err != nil || len(units) != 0 {
				t.Fatalf("Units of an org without any: %v, %v", units, err)
			}
		})
	}
}
