// Package checkpointtest is the conformance suite every checkpoint.Store
// passes (the file store, the S3 store).
package checkpointtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vaultsink/vaultsink/checkpoint"
)

// Factory returns a fresh, empty store. Run calls it once per subtest and
// closes the store when the subtest ends.
type Factory func(t *testing.T) checkpoint.Store

// Run is the conformance suite.
func Run(t *testing.T, f Factory) {
	open := func(t *testing.T) checkpoint.Store {
		t.Helper()
		s := f(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close store: %v", err)
			}
		})
		return s
	}
	ctx := context.Background()

	t.Run("GetMissing", func(t *testing.T) {
		s := open(t)
		if _, err := s.Get(ctx, "org_missing"); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("Get of a missing org = %v, want ErrNotFound", err)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		s := open(t)
		want := Full("org_rt")
		v, err := s.Put(ctx, want)
		if err != nil {
			t.Fatal(err)
		}
		if v == "" {
			t.Fatal("Put returned an empty version")
		}
		got, err := s.Get(ctx, "org_rt")
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != v {
			t.Fatalf("Get version %q, Put returned %q", got.Version, v)
		}
		if err := Same(got, want); err != nil {
			t.Fatal(err)
		}

		// A second Put from the read version succeeds and moves the version.
		got.Windows++
		got.End = got.End.Add(time.Hour)
		got.Lease = nil
		v2, err := s.Put(ctx, got)
		if err != nil {
			t.Fatal(err)
		}
		if v2 == v {
			t.Fatal("version did not change after a Put that changed the checkpoint")
		}
		again, err := s.Get(ctx, "org_rt")
		if err != nil {
			t.Fatal(err)
		}
		if err := Same(again, got); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("Conflict", func(t *testing.T) {
		s := open(t)
		cp := Full("org_c")
		v1, err := s.Put(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		// Creating again (empty version) when it exists.
		if _, err := s.Put(ctx, cp); !errors.Is(err, checkpoint.ErrConflict) {
			t.Fatalf("Put with empty version over an existing checkpoint = %v, want ErrConflict", err)
		}
		cp.Version = v1
		cp.Windows = 100
		v2, err := s.Put(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		// The stale version no longer works.
		cp.Version = v1
		cp.Windows = 200
		if _, err := s.Put(ctx, cp); !errors.Is(err, checkpoint.ErrConflict) {
			t.Fatalf("Put with a stale version = %v, want ErrConflict", err)
		}
		got, err := s.Get(ctx, "org_c")
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != v2 || got.Windows != 100 {
			t.Fatalf("after the conflict: version %q windows %d, want %q and 100", got.Version, got.Windows, v2)
		}
		// A version for a checkpoint that does not exist conflicts too.
		other := Full("org_c_other")
		other.Version = v2
		if _, err := s.Put(ctx, other); !errors.Is(err, checkpoint.ErrConflict) {
			t.Fatalf("Put with a version for a missing checkpoint = %v, want ErrConflict", err)
		}
	})

	t.Run("DeleteIdempotent", func(t *testing.T) {
		s := open(t)
		if err := s.Delete(ctx, "org_d"); err != nil {
			t.Fatalf("Delete of a missing org: %v", err)
		}
		if _, err := s.Put(ctx, Full("org_d")); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if err := s.Delete(ctx, "org_d"); err != nil {
				t.Fatalf("Delete #%d: %v", i+1, err)
			}
		}
		if _, err := s.Get(ctx, "org_d"); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
		if _, err := s.Put(ctx, Full("org_d")); err != nil {
			t.Fatalf("Put as new after Delete: %v", err)
		}
	})

	t.Run("ListSorted", func(t *testing.T) {
		s := open(t)
		orgs, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(orgs) != 0 {
			t.Fatalf("List of an empty store = %v", orgs)
		}
		for _, org := range []string{"org_b", "org_c", "org_a", "org-x.1"} {
			if _, err := s.Put(ctx, Full(org)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "org_c"); err != nil {
			t.Fatal(err)
		}
		orgs, err = s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"org-x.1", "org_a", "org_b"}; !reflect.DeepEqual(orgs, want) {
			t.Fatalf("List = %v, want %v", orgs, want)
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		s := open(t)
		// A member this version does not know (kept from a newer writer's
		// document) can only grow by being written: nothing cuts it.
		huge := Full("org_big")
		huge.Unknown = map[string]json.RawMessage{"future": json.RawMessage(`"` + strings.Repeat("x", 3<<19) + `"`)}
		_, err := s.Put(ctx, huge)
		if !errors.Is(err, checkpoint.ErrTooLarge) {
			t.Fatalf("Put of a 1.5 MiB document = %v, want ErrTooLarge", err)
		}
		for _, want := range []string{"org_big", fmt.Sprint(checkpoint.MaxDocBytes), `"future"`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		if _, err := s.Get(ctx, "org_big"); !errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("Get after a refused create = %v, want ErrNotFound (nothing written)", err)
		}
		// Refused over an existing checkpoint too, which stays as it was.
		v, err := s.Put(ctx, Full("org_big"))
		if err != nil {
			t.Fatal(err)
		}
		huge.Version = v
		if _, err := s.Put(ctx, huge); !errors.Is(err, checkpoint.ErrTooLarge) {
			t.Fatalf("Put of a 1.5 MiB update = %v, want ErrTooLarge", err)
		}
		got, err := s.Get(ctx, "org_big")
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != v || len(got.Unknown) != 0 {
			t.Fatalf("the refused update changed the checkpoint: version %q (was %q), unknown %d", got.Version, v, len(got.Unknown))
		}
		// Just under the limit is written and read back.
		fits := Full("org_big")
		fits.Version = v
		fits.Unknown = map[string]json.RawMessage{"future": json.RawMessage(`"` + strings.Repeat("y", checkpoint.MaxDocBytes-2048) + `"`)}
		if _, err := s.Put(ctx, fits); err != nil {
			t.Fatalf("Put of a document under the limit: %v", err)
		}
		if got, err := s.Get(ctx, "org_big"); err != nil || len(got.Unknown["future"]) != checkpoint.MaxDocBytes-2046 {
			t.Fatalf("Get of a document under the limit: %d bytes of future, %v", len(got.Unknown["future"]), err)
		}
	})

	t.Run("LastErrorClipped", func(t *testing.T) {
		s := open(t)
		cp := Full("org_err")
		cp.LastError = "org org_err: HTTP 403 forbidden: " + strings.Repeat("é", 3<<18) // 1.5 MiB of 2-byte runes
		n := len(cp.LastError)
		if _, err := s.Put(ctx, cp); err != nil {
			t.Fatalf("Put with a 1.5 MiB last_error: %v", err)
		}
		got, err := s.Get(ctx, "org_err")
		if err != nil {
			t.Fatalf("Get after a huge last_error: %v", err)
		}
		if len(got.LastError) > checkpoint.MaxLastErrorBytes || !utf8.ValidString(got.LastError) ||
			!strings.HasPrefix(got.LastError, "org org_err: HTTP 403 forbidden: éé") ||
			!strings.HasSuffix(got.LastError, fmt.Sprintf("… (%d bytes)", n)) {
			t.Fatalf("last_error of %d bytes read back as %d bytes: %.80q…%q", n, len(got.LastError),
				got.LastError, got.LastError[max(0, len(got.LastError)-30):])
		}
	})

	t.Run("ConcurrentStalePuts", func(t *testing.T) {
		s := open(t)
		base := Full("org_race")
		v0, err := s.Put(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		const writers = 8
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cp := base
				cp.Version = v0
				cp.Windows = int64(1000 + i)
				_, errs[i] = s.Put(ctx, cp)
			}()
		}
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("writers %d and %d both won", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, checkpoint.ErrConflict):
				t.Fatalf("writer %d: %v, want nil or ErrConflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no writer won")
		}
		got, err := s.Get(ctx, "org_race")
		if err != nil {
			t.Fatal(err)
		}
		if got.Windows != int64(1000+winner) {
			t.Fatalf("stored windows = %d, want the winner's %d", got.Windows, 1000+winner)
		}
	})
}

// Full returns a checkpoint of org with every field set, times in UTC with
// sub-second precision.
func Full(org string) checkpoint.Checkpoint {
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	return checkpoint.Checkpoint{
		Org:         org,
		End:         t0,
		Events:      123456,
		Bytes:       9876543,
		Windows:     42,
		Quarantined: 7,
		LastRun:     t0.Add(5*time.Minute + 123456789*time.Nanosecond),
		LastSuccess: t0.Add(4*time.Minute + 500*time.Millisecond),
		LastError:   `fetch page 3: 503 "unavailable"`,
		Lease:       &checkpoint.Lease{Owner: "host-a/1234", Expires: t0.Add(time.Hour), Epoch: 9},
	}
}

// Same compares two checkpoints field by field, ignoring Version and
// comparing times as instants.
func Same(got, want checkpoint.Checkpoint) error {
	eqT := func(a, b time.Time) bool { return a.Equal(b) }
	switch {
	case got.Org != want.Org:
		return fmt.Errorf("org %q, want %q", got.Org, want.Org)
	case !eqT(got.End, want.End):
		return fmt.Errorf("end %v, want %v", got.End, want.End)
	case got.Events != want.Events || got.Bytes != want.Bytes || got.Windows != want.Windows || got.Quarantined != want.Quarantined:
		return fmt.Errorf("totals %d/%d/%d/%d, want %d/%d/%d/%d", got.Events, got.Bytes, got.Windows, got.Quarantined,
			want.Events, want.Bytes, want.Windows, want.Quarantined)
	case !eqT(got.LastRun, want.LastRun) || !eqT(got.LastSuccess, want.LastSuccess):
		return fmt.Errorf("last run/success %v/%v, want %v/%v", got.LastRun, got.LastSuccess, want.LastRun, want.LastSuccess)
	case got.LastError != want.LastError:
		return fmt.Errorf("last error %q, want %q", got.LastError, want.LastError)
	case (got.Lease == nil) != (want.Lease == nil):
		return fmt.Errorf("lease %+v, want %+v", got.Lease, want.Lease)
	case got.Lease != nil && (got.Lease.Owner != want.Lease.Owner || got.Lease.Epoch != want.Lease.Epoch || !eqT(got.Lease.Expires, want.Lease.Expires)):
		return fmt.Errorf("lease %+v, want %+v", *got.Lease, *want.Lease)
	}
	return nil
}
