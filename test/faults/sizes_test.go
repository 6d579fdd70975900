package faults_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// TestHugeErrorMessage: the API answers one org's requests with a 403
// carrying a 1.5 MiB JSON error message (larger than a checkpoint store
// reads back) while another org syncs normally. The bad org fails with a
// short error, in the summary and the logs; its checkpoint stays readable
// (checkpoint show and list succeed); once the API answers again the next
// sync brings the org up to date. With both checkpoint stores: the S3
// store reads back at most checkpoint.MaxDocBytes, so a whole message in
// last_error made every later run fail "checkpoint corrupt".
func TestHugeErrorMessage(t *testing.T) {
	for _, store := range []string{"file", "s3"} {
		t.Run(store, func(t *testing.T) {
			to := time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Hour)
			from := to.Add(-4 * time.Hour)
			sim := vaultsim.Start(t, vaultsim.Config{Seed: 41, Orgs: 2, From: from, To: to, Rate: 300})
			toks := simTokens(sim)

			const msgBytes = 3 << 19 // 1.5 MiB
			body, err := json.Marshal(map[string]any{"error": map[string]string{
				"code": "forbidden", "message": "the token lacks the events scope; " + strings.Repeat("x", msgBytes-34),
			}})
			if err != nil {
				t.Fatal(err)
			}
			simURL, err := url.Parse(sim.URL)
			if err != nil {
				t.Fatal(err)
			}
			proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: simURL.Scheme, Host: simURL.Host})
			var broken atomic.Bool
			broken.Store(true)
			var refused atomic.Int64
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if broken.Load() && r.Header.Get("Authorization") == "Bearer "+toks["org_1"] {
					refused.Add(1)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusForbidden)
					_, _ = w.Write(body)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			t.Cleanup(api.Close)

			e := newEnv(t, cfgOpts{url: api.URL + simURL.Path, tokens: toks, start: from})
			if store == "s3" {
				useS3Checkpoints(t, e)
			}

			r := run(t, "sync", "--config", e.cfg)
			if r.code != 1 {
				t.Fatalf("sync with org_1 refused: exit %d, want 1\n%.4000s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
			}
			if refused.Load() == 0 {
				t.Fatal("no request of org_1 was refused: the test proves nothing")
			}
			line := lineOf(r.stdout, "org_1")
			for _, want := range []string{"failed", "403", "events scope", fmt.Sprintf("(%d bytes)", msgBytes)} {
				if !strings.Contains(line, want) {
					t.Errorf("summary line of org_1 does not contain %q: %.600q", want, line)
				}
			}
			for _, l := range strings.Split(r.stdout, "\n") {
				if len(l) >= 2<<10 {
					t.Errorf("summary line of %d bytes: %.200q…", len(l), l)
				}
			}
			for _, l := range strings.Split(r.stderr, "\n") {
				if len(l) >= 4<<10 {
					t.Errorf("log line of %d bytes: %.200q…", len(l), l)
				}
			}
			exact(t, idsByOrg(t, e.out), "org_2", sim.EventIDs("org_2", from, to))

			// The failed org's checkpoint is readable and says why it failed.
			show := func() map[string]any {
				t.Helper()
				s := run(t, "checkpoint", "show", "--config", e.cfg, "--org", "org_1")
				if s.code != 0 {
					t.Fatalf("checkpoint show --org org_1: exit %d\n%.2000s\n%.2000s", s.code, s.stdout, s.stderr)
				}
				var cp map[string]any
				if err := json.Unmarshal([]byte(s.stdout), &cp); err != nil {
					t.Fatalf("checkpoint show: %v\n%.2000s", err, s.stdout)
				}
				return cp
			}
			cp := show()
			if le, _ := cp["last_error"].(string); !strings.Contains(le, "403") || len(le) > 2<<10 {
				t.Errorf("last_error of %d bytes, want the 403 in at most 2 KiB: %.300q", len(le), le)
			}
			l := run(t, "checkpoint", "list", "--config", e.cfg)
			if l.code != 0 || strings.Contains(lineOf(l.stdout, "org_1"), "ERROR") {
				t.Fatalf("checkpoint list: exit %d\n%.3000s\n%.2000s", l.code, l.stdout, l.stderr)
			}

			// The API recovers: the next sync brings org_1 up to date.
			broken.Store(false)
			if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
				t.Fatalf("sync after the API recovered: exit %d\n%.4000s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
			}
			got := idsByOrg(t, e.out)
			for _, org := range sim.Orgs() {
				exact(t, got, org, sim.EventIDs(org, from, to))
			}
			if le, ok := show()["last_error"]; ok {
				t.Errorf("last_error after a successful sync: %.300v", le)
			}
		})
	}
}

// useS3Checkpoints points e's checkpoint store at a fresh versitygw bucket.
func useS3Checkpoints(t *testing.T, e *env) {
	t.Helper()
	srv := s3test.Versity(t)
	useS3CheckpointsAt(t, e, srv, srv.Endpoint)
}

// useS3CheckpointsAt points e's checkpoint store at srv's bucket, reached
// through endpoint (srv's own, or a proxy in front of it).
func useS3CheckpointsAt(t *testing.T, e *env, srv *s3test.Server, endpoint string) {
	t.Helper()
	data, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	fileStore := fmt.Sprintf("checkpoint:\n  type: file\n  path: %s\n", e.state)
	s3Store := "checkpoint:\n  type: s3\n  prefix: vaultsink/state\n" + srv.WithEndpoint(endpoint).YAML("  ")
	if !strings.Contains(string(data), fileStore) {
		t.Fatalf("config has no file checkpoint section to replace:\n%s", data)
	}
	if err := os.WriteFile(e.cfg, []byte(strings.Replace(string(data), fileStore, s3Store, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
}
