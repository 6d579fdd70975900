package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	s3sink "github.com/vaultsink/vaultsink/sinks/s3"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// s3YAML renders a sink or checkpoint section for srv.
func s3YAML(srv *s3test.Server, typ, extra string) string {
	return "  type: " + typ + "\n" + srv.YAML("  ") + "  max_backoff: 50ms\n" + extra
}

func deletePrefix(t *testing.T, srv *s3test.Server, prefix string) {
	t.Helper()
	ctx := context.Background()
	cl, err := s3client.NewClient(ctx, srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	out, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(srv.Bucket), Prefix: aws.String(prefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if _, err := cl.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(srv.Bucket), Key: o.Key}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestE2ES3(t *testing.T) {
	srv := s3test.Versity(t)
	e := newE2E(t, e2eOpts{
		rate: 200,
		sink: s3YAML(srv, "s3", "  prefix: vaultterm/events\n"),
		ckpt: s3YAML(srv, "s3", "  prefix: vaultsink/state\n"),
	})
	e.mustRun("sync")
	db := duck(t)
	dir, keys := s3test.Download(t, srv, "vaultterm/events")
	got := idsByOrg(t, db, dir)
	for _, org := range e.sim.Orgs() {
		if want := e.sim.EventIDs(org, e.from, e.to); !slices.Equal(got[org], want) {
			t.Fatalf("%s: S3 holds %d ids, truth %d", org, len(got[org]), len(want))
		}
	}
	before := contentDigest(t, db, dir)
	// Rerun: nothing new. Delete the checkpoints and rerun: same keys, same rows.
	if out := e.mustRun("sync"); !strings.Contains(out, "windows=0 ") {
		t.Fatalf("second sync wrote windows:\n%s", out)
	}
	deletePrefix(t, srv, "vaultsink/state/")
	e.mustRun("sync")
	dir2, keys2 := s3test.Download(t, srv, "vaultterm/events")
	if !slices.Equal(keys, keys2) {
		t.Fatalf("keys changed after a checkpoint-less rerun: %d before, %d after", len(keys), len(keys2))
	}
	if after := contentDigest(t, db, dir2); !mapsEqual(before, after) {
		t.Fatal("contents changed after a checkpoint-less rerun")
	}
	cl, _ := s3client.NewClient(context.Background(), srv.ClientConfig())
	if ups, err := s3sink.ListIncompleteUploads(context.Background(), cl, srv.Bucket, ""); err != nil || len(ups) != 0 {
		t.Fatalf("incomplete uploads left: %v %v", ups, err)
	}
}

// TestE2ES3Faults: 500s, throttling and cut connections between vaultsink
// and S3 still end with exactly the truth.
func TestE2ES3Faults(t *testing.T) {
	srv := s3test.Versity(t)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	viaProxy := srv.WithEndpoint(proxy.URL)
	proxy.Add(
		s3test.Rule{Op: s3test.OpPutObject, Fault: s3test.Fault500, Skip: 3, Times: 4},
		s3test.Rule{Op: s3test.OpPutObject, Fault: s3test.FaultSlowDown, Skip: 20, Times: 4},
		s3test.Rule{Op: s3test.OpPutObject, Fault: s3test.FaultCutRequest, Skip: 40, Times: 3},
		s3test.Rule{Op: s3test.OpPutObject, Fault: s3test.FaultCutResponse, Skip: 60, Times: 3},
	)
	e := newE2E(t, e2eOpts{
		rate: 100,
		sink: s3YAML(viaProxy, "s3", "  prefix: vaultterm/events\n"),
		ckpt: s3YAML(viaProxy, "s3", "  prefix: vaultsink/state\n"),
	})
	// A fault that outlasts the SDK's retries fails the org's run; the next
	// run resumes from the checkpoint, as the daemon's next tick would.
	for i := 0; i < 5; i++ {
		out, _, err := e.run(context.Background(), "sync")
		t.Logf("sync %d: %v\n%s", i, err, out)
		if err == nil {
			break
		}
	}
	t.Logf("last: %s", e.mustRun("sync"))
	if proxy.Injected(s3test.OpPutObject) < 10 {
		t.Fatalf("only %d faults injected: the test proves little", proxy.Injected(s3test.OpPutObject))
	}
	dir, _ := s3test.Download(t, srv, "vaultterm/events")
	got := idsByOrg(t, duck(t), dir)
	for _, org := range e.sim.Orgs() {
		if want := e.sim.EventIDs(org, e.from, e.to); !slices.Equal(got[org], want) {
			t.Fatalf("%s: S3 holds %d ids, truth %d", org, len(got[org]), len(want))
		}
	}
}

// TestE2ETwoDaemonsShareS3Checkpoints: two processes on the same orgs and
// the same S3 state never both advance an org; the data equals the truth.
func TestE2ETwoDaemonsShareS3Checkpoints(t *testing.T) {
	srv := s3test.Versity(t)
	e := newE2E(t, e2eOpts{
		rate: 300,
		sink: s3YAML(srv, "s3", "  prefix: vaultterm/events\n"),
		ckpt: s3YAML(srv, "s3", "  prefix: vaultsink/state\n"),
	})
	base, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]string, 2)
	for i := range 2 {
		cfg := filepath.Join(e.dir, fmt.Sprintf("daemon%d.yaml", i))
		body := strings.Replace(string(base), "log:\n  level: warn", "log:\n  level: info", 1) + fmt.Sprintf("lease:\n  owner: daemon-%d\n  ttl: 1m\n", i)
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var o, eb strings.Builder
			_ = Run(context.Background(), []string{"sync", "--config", cfg}, &o, &eb)
			outs[i], errs[i] = o.String(), eb.String()
		}()
	}
	wg.Wait()
	all := outs[0] + outs[1] + errs[0] + errs[1]
	if !strings.Contains(all, "yielded") && !strings.Contains(all, "yielding") {
		t.Fatalf("neither daemon yielded an org:\n%s\n%s", outs[0], outs[1])
	}
	// Whatever one yielded, a final pass completes; then the data is exact.
	e.mustRun("sync")
	dir, _ := s3test.Download(t, srv, "vaultterm/events")
	got := idsByOrg(t, duck(t), dir)
	for _, org := range e.sim.Orgs() {
		if want := e.sim.EventIDs(org, e.from, e.to); !slices.Equal(got[org], want) {
			t.Fatalf("%s: S3 holds %d ids, truth %d", org, len(got[org]), len(want))
		}
	}
}
