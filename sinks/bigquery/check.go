package bigquery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/googleapi"

	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/sinks"
)

var _ sinks.Checker = (*Config)(nil)

// Check checks what the sink needs without creating anything (ensure
// creates the datasets and tables on the first commit, New the temp_dir):
// temp_dir; the credentials; the dataset and the staging dataset (they
// exist, in the configured location); each of the three tables (absent:
// the first sync creates it; present: its schema fits and, by the IAM
// testIamPermissions API, the caller may read and change its rows); and a
// dry run of the sink's own count statement (bigquery.jobs.create, and the
// statement against the table as it is). What no API tells before a
// commit: bigquery.tables.create and tables.delete on the staging dataset
// (dataset-level permissions), and bigquery.datasets.create.
func (c *Config) Check(ctx context.Context, section string) []check.Result {
	cc := *c
	cc.SetDefaults()
	if err := cc.Validate(); err != nil {
		return []check.Result{check.Failf("fix "+section+" as the message says", "%v", err)}
	}
	tmp, tmpKey := cc.TempDir, section+".temp_dir"
	if tmp == "" {
		tmp, tmpKey = os.TempDir(), section+".temp_dir (unset: $TMPDIR)"
	}
	rs := []check.Result{check.Dir(tmp, tmpKey)}
	cc.TempDir = "" // New would create it
	s, err := New(ctx, cc, sinks.Env{})
	if err != nil {
		return append(rs, check.Failf(credentialsHint(section), "credentials: %v", err))
	}
	defer s.Close()

	md, r := s.checkDataset(ctx, cc.Dataset, cc.Location, section)
	rs = append(rs, r)
	if md == nil {
		return rs // no tables to look at, no location to run a query in
	}
	loc := md.Location
	if cc.StagingDataset != cc.Dataset {
		_, r := s.checkDataset(ctx, cc.StagingDataset, loc, section)
		rs = append(rs, r)
	}
	targetExists := false
	for _, tb := range []struct {
		name   string
		schema bigquery.Schema
	}{{cc.Table, targetSchema}, {s.quarantineTable(), quarantineSchema}, {s.fenceTable(), fenceSchema}} {
		exists, r := s.checkTable(ctx, tb.name, tb.schema, section)
		rs = append(rs, r)
		if tb.name == cc.Table {
			targetExists = exists
		}
	}
	return append(rs, s.checkDryRun(ctx, loc, targetExists, section))
}

func credentialsHint(section string) string {
	return fmt.Sprintf("check %s.credentials_file (a service-account JSON key) or Application Default Credentials "+
		"(GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`, the workload's service account)", section)
}

// requestFailure is the finding of a failed BigQuery request about what:
// refused credentials, a permission or no answer.
func requestFailure(err error, what, permission, section string) check.Result {
	var ge *googleapi.Error
	switch {
	case errors.As(err, &ge) && ge.Code == http.StatusUnauthorized:
		return check.Failf(credentialsHint(section), "%s: the credentials were refused: %v", what, err)
	case reasonOf(err) == "accessDenied" || errors.As(err, &ge) && ge.Code == http.StatusForbidden:
		return check.Failf(fmt.Sprintf("grant the service account %s (or a role holding it)", permission), "%s: access denied: %v", what, err)
	case errors.As(err, &ge):
		return check.Failf(fmt.Sprintf("check %s (%s)", section, what), "%s: %v", what, err)
	}
	return check.Failf(fmt.Sprintf("check %s.endpoint and the network; %s", section, credentialsHint(section)), "%s: %v", what, err)
}

// checkDataset gets dataset ds (the target's or the staging one), which
// must be in location want ("": anywhere); nil metadata when it does not
// exist, cannot be read or is elsewhere.
func (s *Sink) checkDataset(ctx context.Context, ds, want, section string) (*bigquery.DatasetMetadata, check.Result) {
	name := s.cfg.Project + ":" + ds
	key, kind := section+".dataset", "dataset"
	if ds != s.cfg.Dataset {
		key, kind = section+".staging_dataset", "staging dataset"
	}
	md, err := s.client.DatasetInProject(s.cfg.Project, ds).Metadata(ctx)
	switch {
	case isNotFound(err) && s.cfg.Location != "":
		return nil, check.Failf(fmt.Sprintf("check %s and %s.project for a typo; or create it (`bq --location=%s mk --dataset %s`) or let the first sync create it",
			key, section, s.cfg.Location, name),
			"%s %s does not exist; the first sync would create it in %s (which needs bigquery.datasets.create on project %s)", kind, name, s.cfg.Location, s.cfg.Project)
	case isNotFound(err):
		return nil, check.Failf(fmt.Sprintf("check %s and %s.project for a typo; create the dataset (`bq --location=LOCATION mk --dataset %s`), or set %s.location for the first sync to create it there",
			key, section, name, section),
			"%s %s does not exist and %s.location is not set: sync refuses to start", kind, name, section)
	case err != nil:
		return nil, requestFailure(err, "get "+kind+" "+name, "bigquery.datasets.get on "+name+" (roles/bigquery.dataEditor)", section)
	case want != "" && !strings.EqualFold(md.Location, want) && ds == s.cfg.Dataset:
		return nil, check.Failf(fmt.Sprintf("set %s.location to %s (a dataset cannot move)", section, md.Location),
			"dataset %s is in %s, not in the configured %s", name, md.Location, want)
	case want != "" && !strings.EqualFold(md.Location, want):
		return nil, check.Failf(fmt.Sprintf("set %s to a dataset in %s", key, want),
			"staging dataset %s is in %s but dataset %s is in %s: a query cannot read across locations", name, md.Location, s.cfg.Dataset, want)
	}
	note := ""
	if ds == s.cfg.StagingDataset {
		note = "; staging tables go here: bigquery.tables.create and tables.delete on it cannot be tested before a commit (roles/bigquery.dataEditor has them)"
	}
	return md, check.OKf("%s %s: exists in %s%s", kind, name, md.Location, note)
}

// checkTable reports whether table name exists and, if it does, whether
// its schema fits schema and the caller holds what the sink does with it.
func (s *Sink) checkTable(ctx context.Context, name string, schema bigquery.Schema, section string) (bool, check.Result) {
	full := fmt.Sprintf("%s.%s.%s", s.cfg.Project, s.cfg.Dataset, name)
	t := s.client.DatasetInProject(s.cfg.Project, s.cfg.Dataset).Table(name)
	md, err := t.Metadata(ctx)
	if isNotFound(err) {
		return false, check.OKf("table %s: does not exist yet; the first sync creates it (bigquery.tables.create on dataset %s)", full, s.cfg.Dataset)
	}
	if err != nil {
		return false, requestFailure(err, "get table "+full, "bigquery.tables.get on "+full+" (roles/bigquery.dataEditor)", section)
	}
	missing, err := compareSchema(md.Schema, schema)
	if err != nil {
		return true, check.Failf(fmt.Sprintf("fix or rename the table, or set %s.table to another name: vaultsink never alters existing columns", section),
			"table %s has an incompatible schema: %v", full, err)
	}
	want := []string{"bigquery.tables.get", "bigquery.tables.getData", "bigquery.tables.updateData"}
	found := "schema fits"
	if len(missing) > 0 {
		want = append(want, "bigquery.tables.update")
		found = fmt.Sprintf("the first sync adds %d columns", len(missing))
	}
	got, err := t.IAM().TestPermissions(ctx, want)
	if err != nil {
		return true, check.Warnf("the permissions are tested by the first sync instead",
			"table %s: exists, %s; its permissions could not be tested (testIamPermissions: %v)", full, found, err)
	}
	var lacking []string
	for _, p := range want {
		if !slices.Contains(got, p) {
			lacking = append(lacking, p)
		}
	}
	if len(lacking) > 0 {
		return true, check.Failf(fmt.Sprintf("grant the service account roles/bigquery.dataEditor on dataset %s (or the table)", s.cfg.Dataset),
			"table %s: exists, %s, but the credentials lack %s", full, found, strings.Join(lacking, ", "))
	}
	return true, check.OKf("table %s: exists, %s, and the credentials hold %s", full, found, strings.Join(want, ", "))
}

// checkDryRun dry-runs the sink's own count statement (a read of the
// target) in loc, which proves bigquery.jobs.create and that the statement
// fits the table; before the table exists, a trivial query proves the
// first.
func (s *Sink) checkDryRun(ctx context.Context, loc string, targetExists bool, section string) check.Result {
	sql, params, what := "SELECT 1", []bigquery.QueryParameter(nil), "a trivial query"
	if targetExists {
		end := time.Now().UTC().Truncate(time.Hour)
		sql, params = s.countSQL([]*unit{{s: s, w: event.Window{Org: "vaultsink-check", Start: end.Add(-time.Hour), End: end}}}, "")
		what = "the sink's count statement"
	}
	q := s.client.Query(sql)
	q.Parameters = params
	q.DryRun = true
	q.Location = loc
	q.Labels = s.labels("check")
	job, err := q.Run(ctx)
	if err != nil {
		if reasonOf(err) == "invalidQuery" {
			return check.Failf(fmt.Sprintf("the table %s does not fit the sink's statements: fix or rename it (or set %s.table)", s.target(), section),
				"dry run of %s: %v", what, err)
		}
		return requestFailure(err, "dry run of "+what, "roles/bigquery.jobUser on project "+s.cfg.Project+" (bigquery.jobs.create)", section)
	}
	bytes := int64(0)
	if st := job.LastStatus(); st != nil && st.Statistics != nil {
		bytes = st.Statistics.TotalBytesProcessed
	}
	return check.OKf("dry run of %s in %s accepted (bigquery.jobs.create): it would process %d bytes", what, loc, bytes)
}
