package sinktest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/sinks"
)

// Factory returns a fresh, empty sink and a reader of what it holds. Run
// calls it once per subtest and closes the sink when the subtest ends.
type Factory func(t *testing.T) (sinks.Sink, sinks.Reader)

// Window returns the hour-long window of org starting hour hours after
// 2026-06-01T00:00Z.
func Window(org string, hour int) event.Window {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(hour) * time.Hour)
	return event.Window{Org: org, Start: start, End: start.Add(time.Hour)}
}

// Run is the conformance suite every sinks.Sink passes. The large-window
// memory test (BoundedMemory) is skipped with -short and under -race.
func Run(t *testing.T, f Factory) {
	open := func(t *testing.T) (sinks.Sink, sinks.Reader) {
		t.Helper()
		s, r := f(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close sink: %v", err)
			}
		})
		return s, r
	}

	t.Run("WriteCommit", func(t *testing.T) {
		s, r := open(t)
		w := Window("org_a", 10)
		ids := IDs("evt_a", 0, 3500)
		res := WriteWindow(t, s, w, ids, 1000)
		if res.Events != int64(len(ids)) || res.Bytes <= 0 || res.Location == "" || res.Quarantined != 0 {
			t.Fatalf("Result = %+v, want %d events, bytes > 0, a location, 0 quarantined", res, len(ids))
		}
		ExpectIDs(t, r, w, ids)
	})

	t.Run("RerunKeepsAndAdds", func(t *testing.T) {
		// A rerun that returns less (a token that lost scope, a retention
		// cut) never removes a row; what it adds is added once.
		s, r := open(t)
		w := Window("org_a", 11)
		first := IDs("first", 0, 2500)
		WriteWindow(t, s, w, first, 1000)
		second := IDs("second", 0, 1200)
		second = append(second, IDs("first", 0, 300)...) // 300 the sink holds, 2200 it holds are missing
		res := WriteWindow(t, s, w, second, 1000)
		union := append(slices.Clone(first), IDs("second", 0, 1200)...)
		if res.Events != int64(len(union)) || res.New != 1200 {
			t.Fatalf("second run: %d events, %d new; want %d, 1200", res.Events, res.New, len(union))
		}
		if _, self := s.(sinks.NearDeduper); !self && res.Vanished != 2200 {
			t.Fatalf("second run: %d vanished, want 2200", res.Vanished)
		}
		ExpectIDs(t, r, w, union)
		// A third, identical run adds nothing and leaves the data as it is.
		res = WriteWindow(t, s, w, second, 700)
		if res.New != 0 || res.Events != int64(len(union)) {
			t.Fatalf("third run: %d events, %d new; want %d, 0", res.Events, res.New, len(union))
		}
		ExpectIDs(t, r, w, union)
	})

	t.Run("StaleUnitRefused", func(t *testing.T) {
		// Two processes write one window: the unit opened first commits
		// last, after the other committed. It must not replace the newer
		// unit (a stale writer's view is short of what the other saw).
		s, r := open(t)
		ctx := context.Background()
		w := Window("org_a", 17)
		for _, held := range []bool{false, true} {
			if held {
				WriteWindow(t, s, w, IDs("first", 0, 100), 100)
			}
			stale, err := s.Open(ctx, w)
			if err != nil {
				t.Fatal(err)
			}
			if _, fenced := stale.(sinks.FencedUnit); fenced {
				_ = stale.Abort(ctx)
				t.Skip("the sink fences commits by epoch (SetFence); its own tests cover it")
			}
			writeBatches(t, stale, w, IDs("stale", 0, 300), 100)
			newer := IDs(fmt.Sprintf("newer%t", held), 0, 500)
			WriteWindow(t, s, w, newer, 250)
			_, err = stale.Commit(ctx)
			if !errors.Is(err, sinks.ErrFenced) {
				t.Fatalf("held=%t: the stale unit's commit: %v, want an error wrapping sinks.ErrFenced", held, err)
			}
			_ = stale.Abort(ctx)
			want := newer
			if held {
				want = append(IDs("first", 0, 100), newer...)
			}
			ExpectIDs(t, r, w, want)
			w = Window("org_a", 18)
		}
	})

	t.Run("AbortLeavesNothing", func(t *testing.T) {
		s, r := open(t)
		ctx := context.Background()
		w := Window("org_a", 12)
		u, err := s.Open(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		writeBatches(t, u, w, IDs("aborted", 0, 2000), 1000)
		if err := u.Quarantine(ctx, event.Quarantined{Org: w.Org, Window: w.Range(), Reason: "test", Raw: "{}"}); err != nil {
			t.Fatal(err)
		}
		if err := u.Abort(ctx); err != nil {
			t.Fatalf("abort: %v", err)
		}
		if err := u.Abort(ctx); err != nil {
			t.Fatalf("second abort: %v", err)
		}
		ExpectIDs(t, r, w, nil)

		// Aborting a rerun keeps the committed unit.
		kept := IDs("kept", 0, 1500)
		WriteWindow(t, s, w, kept, 1000)
		u, err = s.Open(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		writeBatches(t, u, w, IDs("aborted", 0, 500), 250)
		if err := u.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		ExpectIDs(t, r, w, kept)
	})

	t.Run("AbortAfterCommitIsNoop", func(t *testing.T) {
		s, r := open(t)
		ctx := context.Background()
		w := Window("org_a", 13)
		ids := IDs("evt", 0, 100)
		u, err := s.Open(ctx, w)
		if err != nil {
			t.Fatal(err)
		}
		writeBatches(t, u, w, ids, 100)
		if _, err := u.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if err := u.Abort(ctx); err != nil {
			t.Fatalf("abort after commit: %v", err)
		}
		ExpectIDs(t, r, w, ids)
	})

	t.Run("EmptyWindow", func(t *testing.T) {
		s, r := open(t)
		w := Window("org_a", 14)
		res := WriteWindow(t, s, w, nil, 1000)
		if res.Events != 0 || res.Bytes != 0 || res.Location != "" {
			t.Fatalf("empty window Result = %+v, want zero", res)
		}
		ExpectIDs(t, r, w, nil)

		ids := IDs("evt", 0, 1000)
		WriteWindow(t, s, w, ids, 1000)
		res = WriteWindow(t, s, w, nil, 1000)
		if res.New != 0 || res.Bytes != 0 || res.Events != int64(len(ids)) || res.Location == "" {
			t.Fatalf("empty rerun Result = %+v, want the 1000 held events, nothing new or written", res)
		}
		if _, self := s.(sinks.NearDeduper); !self && res.Vanished != int64(len(ids)) {
			t.Fatalf("empty rerun: %d vanished, want %d", res.Vanished, len(ids))
		}
		ExpectIDs(t, r, w, ids) // an empty answer never deletes data
	})

	t.Run("Quarantine", func(t *testing.T) {
		s, r := open(t)
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			hour int
			rows int
			bad  int
		}{
			{"with data", 15, 1200, 3},
			{"only quarantine", 16, 0, 2},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := Window("org_q", tc.hour)
				ids := IDs("evt", 0, tc.rows)
				u, err := s.Open(ctx, w)
				if err != nil {
					t.Fatal(err)
				}
				defer u.Abort(ctx)
				writeBatches(t, u, w, ids, 500)
				for i := 0; i < tc.bad; i++ {
					q := event.Quarantined{Org: w.Org, Window: w.Range(), Page: i, Reason: "no timestamp", Raw: fmt.Sprintf(`{"id":"bad%d","note":"line\nbreak \u2028 <b>"}`, i)}
					if err := u.Quarantine(ctx, q); err != nil {
						t.Fatal(err)
					}
				}
				res, err := u.Commit(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if res.Events != int64(tc.rows) || res.Quarantined != int64(tc.bad) {
					t.Fatalf("Result = %+v, want %d events and %d quarantined", res, tc.rows, tc.bad)
				}
				ExpectIDs(t, r, w, ids)
				if qr, ok := r.(QuarantineReader); ok {
					if got := qr.QuarantinedRecords(t, w); got != tc.bad {
						t.Fatalf("%d quarantined records stored, want %d", got, tc.bad)
					}
					// A rerun that quarantines nothing replaces the window's
					// quarantine: the records of a bad pull do not outlive it.
					WriteWindow(t, s, w, ids, 500)
					if got := qr.QuarantinedRecords(t, w); got != 0 {
						t.Fatalf("after a clean rerun %d quarantined records remain, want 0", got)
					}
				}
			})
		}
	})

	t.Run("ConcurrentUnits", func(t *testing.T) {
		s, r := open(t)
		type job struct {
			w   event.Window
			ids []string
		}
		var jobs []job
		for _, org := range []string{"org_x", "org_y", "org_z"} {
			for h := 0; h < 3; h++ {
				jobs = append(jobs, job{Window(org, 20+h), IDs(org, h*10000, 800+h*300)})
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(jobs))
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- writeWindow(context.Background(), s, j.w, j.ids, 250)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		for _, j := range jobs {
			ExpectIDs(t, r, j.w, j.ids)
		}
	})

	t.Run("BoundedMemory", func(t *testing.T) {
		if testing.Short() || raceEnabled {
			t.Skip("writes 500k rows; skipped with -short and -race")
		}
		s, _ := open(t)
		small := peakHeapWriting(t, s, Window("org_m", 30), 100_000)
		large := peakHeapWriting(t, s, Window("org_m", 31), 400_000)
		t.Logf("peak heap above baseline: 100k rows %.1f MiB, 400k rows %.1f MiB", mib(small), mib(large))
		// Bounded memory means a 4x larger window costs about the same: allow
		// 1.5x plus 32 MiB of GC noise, far below the ~4x a buffering sink shows.
		if bound := small*3/2 + 32<<20; large > bound {
			t.Fatalf("peak heap grows with the window: 100k rows %.1f MiB, 400k rows %.1f MiB (bound %.1f MiB)",
				mib(small), mib(large), mib(bound))
		}
	})
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// peakHeapWriting writes n rows in 1000-row batches, each built and released
// in turn as the source does, and returns the peak heap above the baseline.
func peakHeapWriting(t *testing.T, s sinks.Sink, w event.Window, n int) uint64 {
	t.Helper()
	ctx := context.Background()
	runtime.GC()
	base := heapObjects()
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapObjects(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	for i := 0; i < n; i += 1000 {
		rec := Batch(memory.DefaultAllocator, Events(w, IDs(fmt.Sprintf("big%d", w.Start.Hour()), i, min(1000, n-i))))
		err := u.Write(ctx, rec)
		rec.Release()
		if err != nil {
			t.Fatal(err)
		}
	}
	res, err := u.Commit(ctx)
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != int64(n) {
		t.Fatalf("committed %d events, want %d", res.Events, n)
	}
	if p := peak.Load(); p > base {
		return p - base
	}
	return 0
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// QuarantineReader is implemented by the test harness of a sink that can
// count the quarantined records it stores for a window.
type QuarantineReader interface {
	QuarantinedRecords(t testing.TB, w event.Window) int
}

// WriteWindow writes ids as one unit of w in batches of batch rows, commits
// it and returns the Result.
func WriteWindow(t testing.TB, s sinks.Sink, w event.Window, ids []string, batch int) sinks.Result {
	t.Helper()
	ctx := context.Background()
	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	writeBatches(t, u, w, ids, batch)
	res, err := u.Commit(ctx)
	if err != nil {
		t.Fatalf("commit %s: %v", w, err)
	}
	return res
}

func writeWindow(ctx context.Context, s sinks.Sink, w event.Window, ids []string, batch int) error {
	u, err := s.Open(ctx, w)
	if err != nil {
		return err
	}
	defer u.Abort(ctx)
	for i := 0; i < len(ids); i += batch {
		rec := Batch(memory.DefaultAllocator, Events(w, ids[i:min(i+batch, len(ids))]))
		err := u.Write(ctx, rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	_, err = u.Commit(ctx)
	return err
}

func writeBatches(t testing.TB, u sinks.Unit, w event.Window, ids []string, batch int) {
	t.Helper()
	for i := 0; i < len(ids); i += batch {
		rec := Batch(memory.DefaultAllocator, Events(w, ids[i:min(i+batch, len(ids))]))
		err := u.Write(context.Background(), rec)
		rec.Release()
		if err != nil {
			t.Fatalf("write %s: %v", w, err)
		}
	}
}

// ExpectIDs checks that r holds exactly want for w, as a multiset: every id
// once, none missing, none extra.
func ExpectIDs(t testing.TB, r sinks.Reader, w event.Window, want []string) {
	t.Helper()
	var got []string
	if err := r.EventIDs(context.Background(), w, func(id string) error {
		got = append(got, id)
		return nil
	}); err != nil {
		t.Fatalf("read ids %s: %v", w, err)
	}
	if err := SameIDs(got, want); err != nil {
		t.Fatalf("ids of %s: %v", w, err)
	}
}

// SameIDs reports how got and want differ as multisets, or nil.
func SameIDs(got, want []string) error {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if slices.Equal(g, w) {
		return nil
	}
	for i := 0; i < min(len(g), len(w)); i++ {
		if g[i] != w[i] {
			return fmt.Errorf("got %d ids, want %d; first difference at sorted position %d: got %q, want %q", len(g), len(w), i, g[i], w[i])
		}
	}
	return fmt.Errorf("got %d ids, want %d", len(g), len(w))
}
