package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/internal/check/checktest"
	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// checkConnect runs check-config --connect and returns its output and
// exit status.
func (e *e2e) checkConnect() (string, int) {
	e.t.Helper()
	out, errs, err := e.run(context.Background(), "check-config", "--connect")
	code := exitStatus(err)
	e.t.Logf("check-config --connect: exit %d\n%s%s", code, out, errs)
	return out, code
}

// expectFinding fails unless out has a line of label with status whose
// text matches re.
func expectFinding(t *testing.T, out, label, status, re string) {
	t.Helper()
	pat := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + ` +` + regexp.QuoteMeta(status) + ` +.*` + re)
	if !pat.MatchString(out) {
		t.Fatalf("no %q line of %q matching %q in:\n%s", status, label, re, out)
	}
}

// TestCheckConnectMissingBucket: an S3 sink whose bucket does not exist is
// a FAIL naming the bucket, with a hint naming the key, and exit 1 (it
// was "skip" and exit 0).
func TestCheckConnectMissingBucket(t *testing.T) {
	srv := s3test.Versity(t)
	missing := *srv
	missing.Bucket = "no-such-bucket"
	e := newE2E(t, e2eOpts{hours: 2, sink: s3YAML(&missing, "s3", "  prefix: vaultterm/events\n")})
	out, code := e.checkConnect()
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	expectFinding(t, out, "sink s3", "FAIL", `bucket no-such-bucket does not exist`)
	if !strings.Contains(out, "hint: check sink.bucket") {
		t.Fatalf("no hint naming sink.bucket:\n%s", out)
	}
	for _, org := range e.sim.Orgs() {
		expectFinding(t, out, "org "+org, "ok", "token accepted")
	}
}

// TestCheckConnectMissingDataset: a BigQuery sink whose dataset does not
// exist is a FAIL (the first sync would create it, with location set), and
// the check creates neither the dataset nor a table.
func TestCheckConnectMissingDataset(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	e := newE2E(t, e2eOpts{hours: 2, sink: bqYAML(t, srv)})
	out, code := e.checkConnect()
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	expectFinding(t, out, "sink bigquery", "FAIL", `dataset vaultsink-e2e:audit does not exist; the first sync would create it in US`)
	if err := srv.CreateDataset("audit", "US"); err != nil {
		t.Fatalf("the check created the dataset (or: %v)", err)
	}
}

// TestCheckConnectLocalCreatesNothing: a local sink and a file store whose
// directories do not exist are reported as to be created, and are not
// created (building the app used to mkdir both).
func TestCheckConnectLocalCreatesNothing(t *testing.T) {
	e := newE2E(t, e2eOpts{hours: 2})
	before := checktest.Tree(t, e.dir)
	out, code := e.checkConnect()
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	if after := checktest.Tree(t, e.dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("check-config --connect changed %s:\nbefore %v\nafter  %v", e.dir, before, after)
	}
	expectFinding(t, out, "sink local", "ok", `sink.path `+regexp.QuoteMeta(e.outDir())+` does not exist yet; vaultsink creates it on first use`)
	expectFinding(t, out, "checkpoint file", "ok", `checkpoint.path `+regexp.QuoteMeta(filepath.Join(e.dir, "state"))+` does not exist yet`)
}

// closedEndpoint is an http:// address on 127.0.0.1 where nothing listens.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestCheckConnectReportsEveryPart: a bad token for one org, BigQuery
// credentials that cannot be used and an unreachable checkpoint store are
// each reported, and the other orgs are still checked (a sink that failed
// to build used to end the report before any org was checked).
func TestCheckConnectReportsEveryPart(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	creds := filepath.Join(t.TempDir(), "sa.json")
	if err := os.WriteFile(creds, []byte(`{"type": "service_account"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sink := fmt.Sprintf("  type: bigquery\n  project: %s\n  dataset: audit\n  location: US\n  endpoint: %s\n  credentials_file: %s\n",
		srv.Project(), srv.URL(), creds)
	ckpt := fmt.Sprintf("  type: s3\n  bucket: state\n  endpoint: %s\n  region: us-east-1\n  path_style: true\n"+
		"  access_key_id: x\n  secret_access_key: y\n  max_attempts: 1\n", closedEndpoint(t))
	probe := newE2E(t, e2eOpts{hours: 2})
	bad := probe.sim.Orgs()[1]
	e := newE2E(t, e2eOpts{hours: 2, sink: sink, ckpt: ckpt, tokens: map[string]string{bad: "not-a-token"}})
	out, code := e.checkConnect()
	if code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	for _, org := range e.sim.Orgs() {
		if org == bad {
			expectFinding(t, out, "org "+org, "FAIL", `HTTP 401`)
			continue
		}
		expectFinding(t, out, "org "+org, "ok", "token accepted")
	}
	if !strings.Contains(out, "hint: check orgs[1].token_file") {
		t.Fatalf("no hint naming the bad org's token_file:\n%s", out)
	}
	expectFinding(t, out, "sink bigquery", "FAIL", `credentials: `)
	expectFinding(t, out, "checkpoint s3", "FAIL", `bucket state: no answer`)
}

// TestCheckConnectAllGood: orgs, an S3 checkpoint store and an S3 sink
// that all work: every finding ok (the conditional writes included) and
// exit 0; the probes leave no object behind.
func TestCheckConnectAllGood(t *testing.T) {
	srv := s3test.Versity(t)
	e := newE2E(t, e2eOpts{hours: 2,
		sink: s3YAML(srv, "s3", "  prefix: vaultterm/events\n"),
		ckpt: s3YAML(srv, "s3", "  prefix: vaultsink/state\n")})
	out, code := e.checkConnect()
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	for _, org := range e.sim.Orgs() {
		expectFinding(t, out, "org "+org, "ok", "token accepted")
	}
	expectFinding(t, out, "sink s3", "ok", `bucket vaultsink-test: exists`)
	expectFinding(t, out, "sink s3", "ok", `s3://vaultsink-test/vaultterm/events/: a probe object written, read back and deleted`)
	expectFinding(t, out, "sink s3", "ok", `s3://vaultsink-test/vaultterm/_quarantine/: a probe object written, read back and deleted`)
	expectFinding(t, out, "sink s3", "ok", `conditional writes honoured`)
	expectFinding(t, out, "checkpoint s3", "ok", `0 checkpoints read`)
	expectFinding(t, out, "checkpoint s3", "ok", `compare-and-swap works`)
	if !strings.Contains(out, "\n10 ok, 0 warn, 0 FAIL\n") {
		t.Fatalf("not every finding is ok:\n%s", out)
	}
	if keys := s3test.Keys(t, srv); len(keys) != 0 {
		t.Fatalf("the check left objects behind: %v", keys)
	}

	// After a sync the checkpoints are read back, and still nothing of the
	// check is left.
	e.mustRun("sync")
	before := s3test.Keys(t, srv)
	out, code = e.checkConnect()
	if code != exitOK {
		t.Fatalf("exit %d after a sync, want 0", code)
	}
	expectFinding(t, out, "checkpoint s3", "ok", fmt.Sprintf(`%d checkpoints read`, len(e.sim.Orgs())))
	if after := s3test.Keys(t, srv); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("the check changed the bucket:\nbefore %v\nafter  %v", before, after)
	}
}

// TestCheckConnectBigQuery: with the dataset there, a check before the
// first sync creates no table; after a sync it dry-runs the sink's own
// count statement and tests the tables' permissions, and a permission
// the credentials lack is a FAIL naming it.
func TestCheckConnectBigQuery(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	if err := srv.CreateDataset("audit", "US"); err != nil {
		t.Fatal(err)
	}
	e := newE2E(t, e2eOpts{hours: 2, sink: bqYAML(t, srv)})
	out, code := e.checkConnect()
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	expectFinding(t, out, "sink bigquery", "ok", `dataset vaultsink-e2e:audit: exists in US`)
	expectFinding(t, out, "sink bigquery", "ok", `table vaultsink-e2e.audit.vaultterm_events: does not exist yet; the first sync creates it`)
	expectFinding(t, out, "sink bigquery", "ok", `dry run of a trivial query in US accepted`)
	if tables := srv.Tables("audit"); len(tables) != 0 {
		t.Fatalf("the check created tables %v", tables)
	}

	e.mustRun("sync")
	out, code = e.checkConnect()
	if code != exitOK {
		t.Fatalf("exit %d after a sync, want 0", code)
	}
	expectFinding(t, out, "sink bigquery", "ok", `table vaultsink-e2e.audit.vaultterm_events: exists, schema fits, and the credentials hold .*bigquery.tables.updateData`)
	expectFinding(t, out, "sink bigquery", "ok", `dry run of the sink's count statement in US accepted`)

	srv.Deny("bigquery.tables.updateData")
	out, code = e.checkConnect()
	if code != exitFailed {
		t.Fatalf("exit %d with updateData denied, want %d", code, exitFailed)
	}
	expectFinding(t, out, "sink bigquery", "FAIL", `vaultterm_events: exists, schema fits, but the credentials lack bigquery.tables.updateData`)
}
