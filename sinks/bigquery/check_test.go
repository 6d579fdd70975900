package bigquery

import (
	"context"
	"strings"
	"testing"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/option"

	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/internal/check/checktest"
	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
)

// TestCheckFindings: what Check reports about datasets and tables that
// are missing, elsewhere or of another schema, creating none of them.
func TestCheckFindings(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		setup  func(t *testing.T, srv *bqtest.Server)
		mod    func(*Config)
		status check.Status
		msg    string
		hint   string
	}{
		{name: "dataset missing, no location", mod: func(c *Config) { c.Location = "" },
			status: check.Fail, msg: "dataset vaultsink-test:audit does not exist and sink.location is not set", hint: "set sink.location"},
		{name: "dataset elsewhere", setup: func(t *testing.T, srv *bqtest.Server) { mustDataset(t, srv, "audit", "EU") },
			status: check.Fail, msg: "dataset vaultsink-test:audit is in EU, not in the configured US", hint: "set sink.location to EU"},
		{name: "staging elsewhere", mod: func(c *Config) { c.StagingDataset = "stage" },
			setup: func(t *testing.T, srv *bqtest.Server) {
				mustDataset(t, srv, "audit", "US")
				mustDataset(t, srv, "stage", "EU")
			},
			status: check.Fail, msg: "staging dataset vaultsink-test:stage is in EU but dataset audit is in US", hint: "sink.staging_dataset"},
		{name: "table of another schema", setup: func(t *testing.T, srv *bqtest.Server) {
			mustDataset(t, srv, "audit", "US")
			cl, err := bigquery.NewClient(ctx, project, option.WithEndpoint(srv.URL()), option.WithoutAuthentication())
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := cl.Dataset("audit").Table(DefaultTable).Create(ctx, &bigquery.TableMetadata{Schema: bigquery.Schema{
				{Name: "event_id", Type: bigquery.IntegerFieldType, Required: true}}}); err != nil {
				t.Fatal(err)
			}
		}, status: check.Fail, msg: "table vaultsink-test.audit.vaultterm_events has an incompatible schema: column event_id is INTEGER, want STRING", hint: "never alters existing columns"},
		{name: "tables missing", setup: func(t *testing.T, srv *bqtest.Server) { mustDataset(t, srv, "audit", "US") },
			status: check.OK, msg: "table vaultsink-test.audit.vaultterm_events_fence: does not exist yet; the first sync creates it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := bqtest.Start(t, project)
			if tc.setup != nil {
				tc.setup(t, srv)
			}
			before := len(srv.Tables("audit"))
			cfg := Config{Project: project, Dataset: "audit", Location: "US", Endpoint: srv.URL(), WithoutAuthentication: true}
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			r := checktest.Find(t, cfg.Check(ctx, "sink"), tc.msg)
			if r.Status != tc.status || !strings.Contains(r.Hint, tc.hint) {
				t.Fatalf("%s %q (hint %q), want %s and a hint with %q", r.Status, r.Msg, r.Hint, tc.status, tc.hint)
			}
			if after := len(srv.Tables("audit")); after != before {
				t.Fatalf("the check created tables: %d, then %d", before, after)
			}
		})
	}
}

func mustDataset(t *testing.T, srv *bqtest.Server, id, loc string) {
	t.Helper()
	if err := srv.CreateDataset(id, loc); err != nil {
		t.Fatal(err)
	}
}
