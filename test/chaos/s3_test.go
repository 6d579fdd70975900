package chaos_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	s3sink "github.com/vaultsink/vaultsink/sinks/s3"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// s3Section renders a sink or checkpoint section for srv.
func s3Section(srv *s3test.Server, typ, extra string) string {
	return "  type: " + typ + "\n" + srv.YAML("  ") + "  max_backoff: 50ms\n" + extra
}

// TestChaosS3 is the chaos run against a real S3 server (versitygw) with
// S3 checkpoints. Windows are big enough (~6 MB of Parquet) to go up as
// multipart uploads, so kills land in the middle of uploads too.
func TestChaosS3(t *testing.T) {
	t.Parallel()
	kills := envInt("VAULTSINK_CHAOS_KILLS", 10)
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x53))
	srv := s3test.Versity(t)
	const window = time.Hour
	from, to, lateDelay, visible := chaosHistory(window, 3)
	sim := startSim(t, simOpts{seed: seed%1000 + 1, orgs: 2, rate: 60000, from: from, to: to,
		faults: chaosFaults, lateDelay: lateDelay, latency: time.Millisecond})
	dir := t.TempDir()
	const prefix = "vaultterm/events"
	cfg := chaosConfig(t, dir, sim, window, 1000,
		s3Section(srv, "s3", "  prefix: "+prefix+"\n  part_size: 5242880"),
		s3Section(srv, "s3", "  prefix: vaultsink/state"))

	f := chaos(t, cfg, sim, kills, rng, window, 90, 4*time.Second)
	if d := time.Until(visible); d > 0 {
		t.Logf("waiting %s for the last late events to become visible", d.Round(time.Second))
		time.Sleep(d + time.Second)
	}
	finish(t, cfg, sim, &f)
	local, keys := s3test.Download(t, srv, prefix)
	for _, k := range keys {
		if !strings.HasSuffix(k, ".parquet") {
			t.Errorf("object %s under the table prefix is not a Parquet file", k)
		}
	}
	checkTruth(t, local, sim.truth(t), &f)
	checkUploads(t, srv, &f)
	t.Logf("chaos figures (s3): %v", f)
	if f.totalKills() < kills {
		t.Fatalf("only %d kills, want %d", f.totalKills(), kills)
	}
}

// checkUploads: a SIGKILLed process cannot abort its multipart upload, so
// incomplete uploads may remain (a bucket lifecycle rule removes them, see
// sinks/s3's doc). They are invisible to readers; what must hold is that
// each is superseded: its key holds a committed object written after the
// upload began, so no window depends on it.
func checkUploads(t *testing.T, srv *s3test.Server, f *figures) {
	t.Helper()
	ctx := context.Background()
	cl, err := s3client.NewClient(ctx, srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	ups, err := s3sink.ListIncompleteUploads(ctx, cl, srv.Bucket, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		f.leftovers++
		head, err := cl.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(u.Key)})
		if err != nil {
			t.Errorf("incomplete upload %s of %s (begun %s) is not superseded: the object is missing: %v", u.UploadID, u.Key, u.Initiated, err)
			continue
		}
		// LastModified has whole seconds.
		if aws.ToTime(head.LastModified).Before(u.Initiated.Truncate(time.Second)) {
			t.Errorf("incomplete upload of %s begun %s is newer than the object (%s)", u.Key, u.Initiated, aws.ToTime(head.LastModified))
		}
	}
	t.Logf("incomplete multipart uploads after the final sync: %d, every one superseded by a committed object", len(ups))
}
