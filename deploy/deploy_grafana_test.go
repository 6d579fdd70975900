package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// metricName finds metric names of ours and of the Go/process collectors
// in PromQL; label names and values never start with these prefixes here.
var metricName = regexp.MustCompile(`\b((?:vaultsink|process|go)_[a-zA-Z0-9_]+)`)

// dashboardQueries returns every PromQL string of the dashboard: panel
// targets and templating queries.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	var dash any
	if err := json.Unmarshal(readFile(t, "deploy/grafana/vaultsink.json"), &dash); err != nil {
		t.Fatalf("vaultsink.json: %v", err)
	}
	var out []string
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				walk(k, e)
			}
		case []any:
			for _, e := range x {
				walk(key, e)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				out = append(out, x)
			}
		}
	}
	walk("", dash)
	return out
}

// TestGrafanaDashboardShape checks the dashboard without running anything.
func TestGrafanaDashboardShape(t *testing.T) {
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID         int             `json:"id"`
			Type       string          `json:"type"`
			Title      string          `json:"title"`
			Datasource json.RawMessage `json:"datasource"`
			GridPos    *struct{ X, Y, W, H int }
			Targets    []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, "deploy/grafana/vaultsink.json"), &dash); err != nil {
		t.Fatal(err)
	}
	if dash.UID == "" || dash.Title == "" {
		t.Error("dashboard needs a uid and a title")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
			t.Errorf("panel %q has no gridPos", p.Title)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Datasource) == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %q: needs a datasource and targets", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.Count(tg.Expr, "(") != strings.Count(tg.Expr, ")") || strings.Count(tg.Expr, "{") != strings.Count(tg.Expr, "}") {
				t.Errorf("panel %q: unbalanced PromQL %q", p.Title, tg.Expr)
			}
		}
	}
	// What issue 9 asks the dashboard to show.
	used := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		for _, m := range metricName.FindAllString(q, -1) {
			used[m] = true
		}
	}
	for _, want := range []string{
		"vaultsink_checkpoint_lag_seconds",
		"vaultsink_source_events_total",
		"vaultsink_run_windows_total",
		"vaultsink_run_errors_total",
		"vaultsink_source_retries_total",
		"vaultsink_source_request_duration_seconds_bucket",
		"vaultsink_run_window_duration_seconds_bucket",
		"vaultsink_run_quarantined_total",
	} {
		if !used[want] {
			t.Errorf("the dashboard does not query %s", want)
		}
	}
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a bytes.Buffer safe for a process writing and a test reading.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func httpGet(url string) (int, []byte, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func parseMetrics(b []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(b))
}

func counterSum(fams map[string]*dto.MetricFamily, name string, label, value string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
	for _, m := range f.GetMetric() {
		match := label == ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label && lp.GetValue() == value {
				match = true
			}
		}
		if match {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// TestGrafanaMetricsExist runs the daemon as users do — the image's binary,
// `run --config`, a local sink and file checkpoints — against the simulator
// with faults that make every metric family appear (retries, duplicates,
// quarantine, an auth error), scrapes /metrics after the first pass, and
// checks that every metric the dashboard queries is on the page. It also
// checks /healthz, /readyz and a clean exit on SIGTERM.
func TestGrafanaMetricsExist(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the daemon")
	}
	bin := vaultsinkBinary(t)

	now := time.Now().UTC()
	// Three closed windows for org_1 alone, even in the first minutes of an
	// hour (settle is 1m: the hour that just ended may not be closed yet).
	start := now.Add(-2 * time.Minute).Truncate(time.Hour).Add(-3 * time.Hour)
	sim := vaultsim.Start(t, vaultsim.Config{
		Seed: 9, Orgs: 2, Rate: 600,
		From: start.Add(-time.Hour), To: now,
		// Retries by reason, duplicates across page boundaries, and
		// records with a bad timestamp (the quarantine metrics appear).
		Faults: vaultsim.Faults{TooMany: 0.2, E503: 0.1, Dup: 0.3, BadTimestamp: 0.01},
	})
	creds := map[string]string{}
	for _, c := range sim.Creds() {
		creds[c.OrgID] = c.Token
	}
	if creds["org_1"] == "" || creds["org_2"] == "" {
		t.Fatalf("simulator creds %v: want org_1 and org_2", sim.Orgs())
	}

	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf(`source:
  base_url: %s
  page_size: 100
  retry:
    initial_backoff: 5ms
    max_backoff: 20ms
orgs:
  - id: org_1
    token_env: DEPLOYTEST_TOKEN_1
  # org_2's token under another id: every record names org_2, so the window
  # is held back and the org fails (the suspect-window metric appears).
  - id: org_alias
    token_env: DEPLOYTEST_TOKEN_2
  # A wrong token: an auth error (the error metrics appear).
  - id: org_bad
    token_env: DEPLOYTEST_TOKEN_BAD
start: %s
window: 1h
settle: 1m
schedule: "@every 1h"
jitter: 0s
concurrency: 3
shutdown_grace: 5s
server:
  listen: 127.0.0.1:%d
log:
  level: info
  format: json
sink:
  type: local
  path: %s
checkpoint:
  type: file
  path: %s
`, sim.URL, start.Format(time.RFC3339), port, filepath.Join(dir, "out"), filepath.Join(dir, "state"))
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	var stderr syncBuffer
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(),
		"DEPLOYTEST_TOKEN_1="+creds["org_1"],
		"DEPLOYTEST_TOKEN_2="+creds["org_2"],
		"DEPLOYTEST_TOKEN_BAD=vt_00000000000000000000000000000000")
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("vaultsink output:\n%s", stderr.String())
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// The first pass: org_1 committed its windows, org_bad failed, nothing runs.
	var fams map[string]*dto.MetricFamily
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("vaultsink run exited early: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete first pass within 90s; last scrape had %d families", len(fams))
		}
		time.Sleep(200 * time.Millisecond)
		code, body, err := httpGet(base + "/metrics")
		if err != nil || code != http.StatusOK {
			continue
		}
		f, err := parseMetrics(body)
		if err != nil {
			t.Fatalf("parse /metrics: %v\n%s", err, body)
		}
		fams = f
		if counterSum(fams, "vaultsink_run_windows_total", "result", "committed") >= 3 &&
			counterSum(fams, "vaultsink_run_errors_total", "org", "org_bad") >= 1 &&
			fams["vaultsink_run_orgs_running"] != nil && counterSum(fams, "vaultsink_run_orgs_running", "", "") == 0 {
			break
		}
	}

	t.Run("health", func(t *testing.T) {
		for _, p := range []string{"/healthz", "/readyz"} {
			code, body, err := httpGet(base + p)
			if err != nil || code != http.StatusOK {
				t.Errorf("GET %s: %d %v %s", p, code, err, body)
			}
		}
	})

	t.Run("dashboard metrics exist", func(t *testing.T) {
		have := map[string]bool{}
		for name, f := range fams {
			have[name] = true
			if f.GetType() == dto.MetricType_HISTOGRAM {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					have[name+s] = true
				}
			}
		}
		var missing, used []string
		seen := map[string]bool{}
		for _, q := range dashboardQueries(t) {
			for _, m := range metricName.FindAllString(q, -1) {
				if seen[m] {
					continue
				}
				seen[m] = true
				used = append(used, m)
				if !have[m] {
					missing = append(missing, m)
				}
			}
		}
		sort.Strings(used)
		t.Logf("dashboard queries %d metrics: %s", len(used), strings.Join(used, " "))
		if len(used) < 15 {
			t.Errorf("only %d metric names found in the dashboard: the extraction is broken", len(used))
		}
		if len(missing) > 0 {
			var names []string
			for n := range fams {
				if strings.HasPrefix(n, "vaultsink_") {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			t.Errorf("the dashboard queries metrics that /metrics does not serve: %v\nserved: %v", missing, names)
		}
		// The faults were chosen so that these appear; if one is missing
		// the check above proved less than it claims.
		for _, n := range []string{"vaultsink_source_retries_total", "vaultsink_source_duplicates_total",
			"vaultsink_run_quarantined_total", "vaultsink_source_quarantined_total", "vaultsink_run_errors_total"} {
			if counterSum(fams, n, "", "") == 0 {
				t.Errorf("%s is zero or absent: the scenario did not exercise it", n)
			}
		}
	})

	t.Run("SIGTERM exits 0 within the grace", func(t *testing.T) {
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second+10*time.Second)
		defer cancel()
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Errorf("vaultsink run after SIGTERM: %v", err)
			}
		case <-ctx.Done():
			t.Error("vaultsink run did not exit within shutdown_grace (5s) + 10s of SIGTERM")
		}
	})
}
