package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

// TestProbeConditionalWrites: the start-up probe tells what the store
// honours. versitygw honours If-None-Match on PutObject and on
// CompleteMultipartUpload; gofakes3 only on PutObject.
func TestProbeConditionalWrites(t *testing.T) {
	for name, want := range map[string][2]bool{"versitygw": {true, true}, "gofakes3": {true, false}} {
		t.Run(name, func(t *testing.T) {
			srv := servers()[name](t)
			s := newSink(t, srv, nil)
			c, err := s.ProbeConditionalWrites(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if c.Put != want[0] || c.Multipart != want[1] {
				t.Fatalf("probe: put %t multipart %t, want %t %t", c.Put, c.Multipart, want[0], want[1])
			}
			msg, err := s.ProbeFencing(context.Background())
			if err != nil || !strings.Contains(msg, "refused") {
				t.Fatalf("ProbeFencing: %q, %v", msg, err)
			}
			// The scratch object is gone.
			if keys := listKeys(t, s.Client(), srv.Bucket, ""); len(keys) != 0 {
				t.Fatalf("the probe left %v", keys)
			}
		})
	}
}

// TestStaleMultipartRefused: a stale unit large enough for a multipart
// upload is refused at CompleteMultipartUpload by a store that honours the
// condition there (versitygw, AWS), and leaves no incomplete upload.
func TestStaleMultipartRefused(t *testing.T) {
	srv := s3test.Versity(t)
	s := newSink(t, srv, multipart)
	ctx := context.Background()
	stale, err := s.Open(ctx, window)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range batches(window, sinktest.IDs("stale", 0, multipartEvents)) {
		if err := stale.Write(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	newer := sinktest.IDs("newer", 0, 1000)
	if _, err := writeWindow(t, s, window, newer, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := stale.Commit(ctx); !errors.Is(err, sinks.ErrFenced) {
		t.Fatalf("stale multipart commit: %v, want sinks.ErrFenced", err)
	}
	_ = stale.Abort(ctx)
	checkObject(t, s, srv, window, newer)
	noIncompleteUploads(t, s)
}
