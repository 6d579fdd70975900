// Package faults_test backs the rows of docs/faults.md that cross packages:
// each simulator fault kind, a corrupt checkpoint, a full disk, clock skew
// between the daemon and the API, a huge page and bad records, each run
// through the real vaultsink binary.
package faults_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/vaultsink/vaultsink/internal/testbin"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

func vaultsinkBinary(t *testing.T) string { return testbin.Build(t, "vaultsink") }

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// result of one vaultsink process.
type result struct {
	code           int
	stdout, stderr string
	maxRSS         int64 // bytes
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	cmd := exec.Command(vaultsinkBinary(t), args...)
	peak := testbin.PeakRSS(t, cmd)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	done := make(chan struct{})
	timer := time.AfterFunc(3*time.Minute, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Run()
	close(done)
	r := result{stdout: so.String(), stderr: se.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	r.maxRSS = peak()
	return r
}

// env is a vaultsink config in a temp dir against an Events API at url.
type env struct {
	dir, cfg, out, state string
}

type cfgOpts struct {
	url      string
	tokens   map[string]string // org -> token
	start    time.Time
	window   string
	settle   string
	lookback int
	extra    string // more source: keys, indented two spaces
	out      string // sink path; default <dir>/out
	pageSize int    // default 100
}

func newEnv(t *testing.T, o cfgOpts) *env {
	t.Helper()
	e := &env{dir: t.TempDir()}
	e.out, e.state = filepath.Join(e.dir, "out"), filepath.Join(e.dir, "state")
	if o.out != "" {
		e.out = o.out
	}
	if o.window == "" {
		o.window = "1h"
	}
	if o.settle == "" {
		o.settle = "1s"
	}
	if o.pageSize == 0 {
		o.pageSize = 100
	}
	var orgs strings.Builder
	for _, org := range sortedKeys(o.tokens) {
		p := filepath.Join(e.dir, org+".token")
		if err := os.WriteFile(p, []byte(o.tokens[org]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&orgs, "  - id: %s\n    token_file: %s\n", org, p)
	}
	cfg := fmt.Sprintf(`source:
  base_url: %s
  page_size: %d
  timeout: 10s
  retry: {initial_backoff: 2ms, max_backoff: 20ms, max_attempts: 40}
%sorgs:
%sstart: %s
window: %s
settle: %s
lookback: %d
concurrency: 3
shutdown_grace: 1s
lease: {owner: faults, ttl: 10m}
server: {listen: ""}
log: {level: info, format: json}
sink:
  type: local
  path: %s
checkpoint:
  type: file
  path: %s
`, o.url, o.pageSize, o.extra, orgs.String(), o.start.Format(time.RFC3339), o.window, o.settle, o.lookback, e.out, e.state)
	e.cfg = filepath.Join(e.dir, "vaultsink.yaml")
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func simTokens(sim *vaultsim.Running) map[string]string {
	m := map[string]string{}
	for _, c := range sim.Creds() {
		m[c.OrgID] = c.Token
	}
	return m
}

// idsByOrg reads every event_id of every Parquet file under dir with DuckDB.
func idsByOrg(t *testing.T, dir string) map[string]map[string]int {
	t.Helper()
	out := map[string]map[string]int{}
	if files, _ := filepath.Glob(filepath.Join(dir, "*")); len(files) == 0 {
		return out
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM glob('%s/**/*.parquet')`, dir)).Scan(&n); err != nil || n == 0 {
		return out
	}
	rows, err := db.Query(fmt.Sprintf(`SELECT org_id, event_id, count(*) FROM read_parquet('%s/**/*.parquet') GROUP BY ALL`, dir))
	if err != nil {
		t.Fatalf("DuckDB cannot read the sink: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var org, id string
		if err := rows.Scan(&org, &id, &n); err != nil {
			t.Fatal(err)
		}
		if out[org] == nil {
			out[org] = map[string]int{}
		}
		out[org][id] = n
	}
	return out
}

// exact asserts the sink holds exactly want's ids for org, each once.
func exact(t *testing.T, got map[string]map[string]int, org string, want []string) {
	t.Helper()
	missing, dups := 0, 0
	for _, id := range want {
		switch got[org][id] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	if missing != 0 || dups != 0 || len(got[org]) != len(want) {
		t.Fatalf("%s: %d rows for %d true events: %d missing, %d duplicated", org, len(got[org]), len(want), missing, dups)
	}
}

func parquetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return nil
	})
	return out
}
