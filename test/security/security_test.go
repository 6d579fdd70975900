// Package security_test checks vaultsink's security promises against the
// real binary and the real source client: secrets never reach a log line,
// an error, the metrics page or a written file; state files are private;
// a token is never sent to another host; TLS verification is on by default.
package security_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/internal/testbin"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

func vaultsinkBinary(t *testing.T) string { return testbin.Build(t, "vaultsink") }

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// leakCheck collects every byte vaultsink emitted or wrote and counts the
// places a secret appears.
type leakCheck struct {
	t       *testing.T
	secrets map[string]string // name -> value
	scanned int               // sources scanned
	hits    []string
}

func (l *leakCheck) scan(where string, b []byte) {
	l.scanned++
	for name, v := range l.secrets {
		if bytes.Contains(b, []byte(v)) {
			l.hits = append(l.hits, fmt.Sprintf("%s appears in %s", name, where))
		}
	}
}

func (l *leakCheck) scanTree(root string) {
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		l.scan(p, b)
		return nil
	})
	if err != nil {
		l.t.Fatal(err)
	}
}

// run runs the binary to completion and scans its output.
func (l *leakCheck) run(env []string, args ...string) (stdout, stderr string, code int) {
	l.t.Helper()
	cmd := exec.Command(vaultsinkBinary(l.t), args...)
	cmd.Env = append(os.Environ(), env...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		l.t.Fatal(err)
	}
	l.scan(fmt.Sprintf("stdout of %v", args[:1]), so.Bytes())
	l.scan(fmt.Sprintf("stderr of %v", args[:1]), se.Bytes())
	return so.String(), se.String(), code
}

// TestNoSecretLeaks: a full run at debug level with an API token, a JWT,
// an env-expanded token, a wrong token (the error path) and an S3 secret
// key; every output and every written file is searched for them.
func TestNoSecretLeaks(t *testing.T) {
	to := time.Now().UTC().Truncate(time.Hour)
	from := to.Add(-6 * time.Hour)
	faults, _ := vaultsim.ParseFaults("429=0.05,500=0.05,cut=0.02,malformed=0.02")
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 21, Orgs: 3, From: from, To: to, Rate: 400, Faults: faults})
	srv := s3test.Versity(t)
	creds := sim.Creds()
	wrong := "vt_live_wrong_0123456789abcdefSECRET"
	l := &leakCheck{t: t, secrets: map[string]string{
		"org_1 API token":       creds[0].Token,
		"org_2 JWT":             creds[1].JWT,
		"org_3 API token (env)": creds[2].Token,
		"org_4 wrong token":     wrong,
		"S3 secret key":         srv.SecretKey,
	}}
	dir := t.TempDir()
	in, out, state := filepath.Join(dir, "in"), filepath.Join(dir, "out"), filepath.Join(dir, "state")
	if err := os.MkdirAll(in, 0o700); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(in, "org_1.token")
	if err := os.WriteFile(tokenFile, []byte(creds[0].Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`source:
  base_url: %s
  page_size: 100
  retry: {initial_backoff: 2ms, max_backoff: 20ms, max_attempts: 30}
orgs:
  - id: org_1
    token_file: %s
  - id: org_2
    token: %s
  - id: org_3
    token: ${SEC_TEST_ORG3_TOKEN}
    sink:
      type: s3
      bucket: %s
      prefix: vaultterm/events
      endpoint: %s
      region: %s
      path_style: true
      checksums: when_required
      access_key_id: %s
      secret_access_key: %s
  - id: org_4
    token: %s
start: %s
window: 1h
settle: 1s
concurrency: 4
schedule: "@every 1h"
jitter: 0s
shutdown_grace: 1s
server:
  listen: 127.0.0.1:0
log:
  level: debug
  format: json
sink:
  type: local
  path: %s
checkpoint:
  type: file
  path: %s
`, sim.URL, tokenFile, creds[1].JWT, srv.Bucket, srv.Endpoint, srv.Region, srv.AccessKey, srv.SecretKey, wrong,
		from.Format(time.RFC3339), out, state)
	cfgPath := filepath.Join(in, "vaultsink.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"SEC_TEST_ORG3_TOKEN=" + creds[2].Token}

	// sync: three orgs succeed, org_4's 401 goes through every error path.
	so, se, code := l.run(env, "sync", "--config", cfgPath)
	if code != 1 || !strings.Contains(so, "org_4") || !strings.Contains(so, "401") {
		t.Fatalf("sync: want exit 1 with org_4's 401 named, got %d\n%s\n%s", code, so, se)
	}
	if !strings.Contains(se, `"level":"DEBUG"`) {
		t.Fatal("no debug lines: the test would not cover debug logging")
	}
	l.run(env, "verify", "--config", cfgPath, "--org", "org_1", "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
	l.run(env, "checkpoint", "list", "--config", cfgPath)
	l.run(env, "checkpoint", "show", "--config", cfgPath, "--org", "org_4")
	l.run(env, "check-config", "--config", cfgPath, "--connect")
	// A config error that involves a secret-bearing field.
	bad := strings.Replace(cfg, "token: "+wrong, "token: "+wrong+"\n    tokn: "+wrong, 1)
	badPath := filepath.Join(in, "bad.yaml")
	if err := os.WriteFile(badPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, se, code := l.run(env, "sync", "--config", badPath); code != 2 || !strings.Contains(se, "tokn") {
		t.Fatalf("bad config: want exit 2 naming the key, got %d\n%s", code, se)
	}

	// The daemon: scrape /metrics, /healthz and /readyz, then stop it.
	metrics := scrapeDaemon(t, l, env, cfgPath)
	if !strings.Contains(metrics, "vaultsink_run_windows_total") {
		t.Fatalf("metrics page lacks the run metrics:\n%.2000s", metrics)
	}

	l.scanTree(out)
	l.scanTree(state)
	scanBucket(t, l, srv)
	t.Logf("secret grep: %d secrets, %d outputs/files/objects scanned, %d hits", len(l.secrets), l.scanned, len(l.hits))
	for _, h := range l.hits {
		t.Error(h)
	}

	checkModes(t, out, state)
}

// scrapeDaemon starts `vaultsink run`, waits for its first pass, scrapes
// its HTTP endpoints (scanning them), and stops it with SIGTERM.
func scrapeDaemon(t *testing.T, l *leakCheck, env []string, cfgPath string) string {
	t.Helper()
	cmd := exec.Command(vaultsinkBinary(t), "run", "--config", cfgPath)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var so bytes.Buffer
	cmd.Stdout = &so
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var se bytes.Buffer
	addrc := make(chan string, 1)
	committed := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			se.Write(line)
			se.WriteByte('\n')
			var m map[string]any
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if a, ok := m["addr"].(string); ok && m["msg"] == "serving metrics and health" {
				addrc <- a
			}
			if m["msg"] == "org run failed" && m["org"] == "org_4" {
				select {
				case committed <- struct{}{}:
				default:
				}
			}
		}
	}()
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the daemon did not report its listen address")
	}
	select {
	case <-committed:
	case <-time.After(60 * time.Second):
		t.Log("no failure line for org_4 within 60s; scraping anyway")
	}
	var page string
	for _, p := range []string{"/metrics", "/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		l.scan("the daemon's "+p, b)
		if p == "/metrics" {
			page = string(b)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	<-done
	_ = cmd.Wait()
	l.scan("stderr of run", se.Bytes())
	l.scan("stdout of run", so.Bytes())
	return page
}

// scanBucket scans every object in the bucket: data, quarantine, state.
func scanBucket(t *testing.T, l *leakCheck, srv *s3test.Server) {
	t.Helper()
	ctx := context.Background()
	cl, err := s3client.NewClient(ctx, srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	keys := s3test.Keys(t, srv)
	for _, key := range keys {
		obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range obj.Metadata {
			b = append(b, k+"="+v+"\n"...)
		}
		l.scan("s3://"+srv.Bucket+"/"+key, b)
	}
	if len(keys) == 0 {
		t.Fatal("no objects in the bucket: org_3 wrote nothing")
	}
}

// checkModes: checkpoints and quarantine files are 0600; data directories
// give nothing to others and no write to the group; data files are not
// writable by the group or readable by others.
func checkModes(t *testing.T, out, state string) {
	t.Helper()
	files := 0
	for _, root := range []string{out, state} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			perm := info.Mode().Perm()
			switch {
			case d.IsDir():
				if perm&0o027 != 0 {
					t.Errorf("directory %s has mode %v, want 0700 or 0750", p, perm)
				}
			case root == state || strings.HasSuffix(p, ".jsonl") || strings.Contains(p, "_quarantine"):
				files++
				if d.Name() != ".lock" && perm != 0o600 {
					t.Errorf("%s has mode %v, want 0600", p, perm)
				}
			default:
				files++
				if perm&0o027 != 0 {
					t.Errorf("data file %s has mode %v, want 0640 or tighter", p, perm)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		t.Fatal("no files written")
	}
}

// TestRedirectToOtherHostRefused: a redirect to another host is refused
// before any request reaches it, so the token cannot follow; a redirect on
// the same host is followed (so the test can fail).
func TestRedirectToOtherHostRefused(t *testing.T) {
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 3, Orgs: 1, Rate: 100})
	var otherHits, otherAuth atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		otherHits.Add(1)
		if r.Header.Get("Authorization") != "" {
			otherAuth.Add(1)
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(other.Close)
	for _, tc := range []struct {
		name     string
		target   string // where /api/events/v1 redirects
		wantErr  error
		wantHits int64
	}{
		{"other host", other.URL + "/api/events/v1", source.ErrOffHost, 0},
		{"same host", sim.URL + "/events/v1", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/moved") {
					r.URL.Path = strings.TrimPrefix(r.URL.Path, "/moved")
					sim.Handler().ServeHTTP(w, r)
					return
				}
				target := tc.target
				if tc.wantErr == nil {
					target = "/moved/api/events/v1"
				}
				http.Redirect(w, r, target+"?"+r.URL.RawQuery, http.StatusFound)
			}))
			t.Cleanup(front.Close)
			c := newClient(t, front.URL+"/api", nil, nil)
			err := walkAll(c, sim, time.Now().Add(-2*time.Hour).Truncate(time.Hour))
			if tc.wantErr == nil && err != nil {
				t.Fatalf("same-host redirect not followed: %v", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("want %v, got %v", tc.wantErr, err)
			}
			if otherHits.Load() != tc.wantHits || otherAuth.Load() != 0 {
				t.Fatalf("the other host got %d requests (%d with a token)", otherHits.Load(), otherAuth.Load())
			}
		})
	}
}

func newClient(t *testing.T, base string, mod func(*source.Config), logw io.Writer) *source.Client {
	t.Helper()
	cfg := source.Config{BaseURL: base}
	cfg.SetDefaults()
	cfg.Retry.InitialBackoff, cfg.Retry.MaxBackoff, cfg.Retry.MaxAttempts = time.Millisecond, 5*time.Millisecond, 2
	cfg.Timeout = 5 * time.Second
	if mod != nil {
		mod(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := source.NewClient(cfg, newLogger(logw), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func walkAll(c *source.Client, sim *vaultsim.Running, start time.Time) error {
	org := source.Org{ID: "org_1", Credential: source.Credential{Token: secret.New(sim.Creds()[0].Token)}}
	w := event.Window{Org: "org_1", Start: start, End: start.Add(time.Hour)}
	_, err := c.Walk(context.Background(), org, w, memory.NewGoAllocator(), source.WalkOptions{}, func(p source.Page) error {
		if p.Rec != nil {
			p.Rec.Release()
		}
		return nil
	})
	return err
}
