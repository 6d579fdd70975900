package s3_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/internal/check/checktest"
	s3sink "github.com/vaultsink/vaultsink/sinks/s3"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

func checkConfig(srv *s3test.Server) *s3sink.Config {
	cfg := &s3sink.Config{ClientConfig: srv.ClientConfig(), Bucket: srv.Bucket, Prefix: "vaultterm/events"}
	cfg.SetDefaults()
	return cfg
}

// TestCheck: against versitygw every finding is ok (conditional writes
// included) and no probe object is left; a missing bucket is one FAIL
// naming it; gofakes3, which ignores the condition on
// CompleteMultipartUpload, is a warning saying what guarantee remains.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	t.Run("versitygw", func(t *testing.T) {
		srv := s3test.Versity(t)
		checktest.Expect(t, checkConfig(srv).Check(ctx, "sink"),
			"ok bucket vaultsink-test: exists",
			"ok s3://vaultsink-test/vaultterm/events/: a probe object written, read back and deleted",
			"ok s3://vaultsink-test/vaultterm/_quarantine/: a probe object written, read back and deleted",
			"ok conditional writes honoured")
		if keys := s3test.Keys(t, srv); len(keys) != 0 {
			t.Fatalf("the check left %v", keys)
		}
	})
	t.Run("missing bucket", func(t *testing.T) {
		srv := s3test.Versity(t)
		cfg := checkConfig(srv)
		cfg.Bucket = "nope"
		rs := cfg.Check(ctx, "orgs[1].sink")
		checktest.Expect(t, rs, "FAIL bucket nope does not exist")
		if !strings.Contains(rs[0].Hint, "orgs[1].sink.bucket") {
			t.Fatalf("hint %q does not name orgs[1].sink.bucket", rs[0].Hint)
		}
	})
	t.Run("gofakes3", func(t *testing.T) {
		srv := s3test.GoFakeS3(t)
		checktest.Expect(t, checkConfig(srv).Check(ctx, "sink"),
			"ok bucket vaultsink-test: exists",
			"ok a probe object written",
			"ok a probe object written",
			"warn conditional writes honoured on PutObject: true, on CompleteMultipartUpload: false")
	})
}
