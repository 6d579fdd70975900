package faults_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// TestSimulatorFaultMatrix runs a sync through each fault kind of the
// simulator alone, at a high rate, and checks what the user gets.
func TestSimulatorFaultMatrix(t *testing.T) {
	to := time.Now().UTC().Truncate(time.Hour)
	from := to.Add(-6 * time.Hour)
	retryable := func(kind string) func(t *testing.T, sim *vaultsim.Running, e *env, r result) {
		return func(t *testing.T, sim *vaultsim.Running, e *env, r result) {
			if r.code != 0 {
				t.Fatalf("sync under %s: exit %d\n%s\n%s", kind, r.code, r.stdout, tailLines(r.stderr, 10))
			}
			if sim.Requests().Faults[kind] == 0 {
				t.Fatalf("no %s fault was injected: the test proves nothing", kind)
			}
			got := idsByOrg(t, e.out)
			for _, org := range sim.Orgs() {
				exact(t, got, org, sim.EventIDs(org, from, to))
			}
			v := run(t, "verify", "--config", e.cfg, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
			if v.code != 0 {
				t.Fatalf("verify: exit %d\n%s", v.code, v.stdout)
			}
		}
	}
	tests := []struct {
		kind   string
		faults string
		mod    func(*vaultsim.Config)
		check  func(t *testing.T, sim *vaultsim.Running, e *env, r result)
	}{
		{kind: "429", faults: "429=0.3", check: retryable("429")},
		{kind: "500", faults: "500=0.3", check: retryable("500")},
		{kind: "502", faults: "502=0.3", check: retryable("502")},
		{kind: "503", faults: "503=0.3", check: retryable("503")},
		{kind: "slow", faults: "slow=0.2", mod: func(c *vaultsim.Config) { c.SlowDelay = 20 * time.Millisecond }, check: retryable("slow")},
		{kind: "cut", faults: "cut=0.3", check: retryable("cut")},
		{kind: "malformed", faults: "malformed=0.3", check: retryable("malformed")},
		{kind: "dup", faults: "dup=0.5", check: retryable("dup")},
		{kind: "revoke-after", faults: "revoke-after=10", check: func(t *testing.T, sim *vaultsim.Running, e *env, r result) {
			// Exit 1, each org named with its 401; the checkpoint never
			// passes a window without its file.
			if r.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", r.code, r.stdout)
			}
			for _, org := range sim.Orgs() {
				line := lineOf(r.stdout, org)
				if !strings.Contains(line, "failed") || !strings.Contains(line, "401") || !strings.Contains(line, "token_revoked") {
					t.Errorf("summary line of %s does not name the revoked token: %q", org, line)
				}
			}
			checkpointsCovered(t, e, sim.Orgs(), from)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.kind, func(t *testing.T) {
			f, err := vaultsim.ParseFaults(tc.faults)
			if err != nil {
				t.Fatal(err)
			}
			cfg := vaultsim.Config{Seed: 9, Orgs: 3, From: from, To: to, Rate: 600, Faults: f, RetryAfter: 0}
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			sim := vaultsim.Start(t, cfg)
			e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from})
			tc.check(t, sim, e, run(t, "sync", "--config", e.cfg))
		})
	}
}

// TestFaultLateEvents: late events (visible two hours after their
// timestamp) are missed by the first sync and brought in, without
// duplicates, by lookback once the API shows them.
func TestFaultLateEvents(t *testing.T) {
	to := time.Now().UTC().Truncate(time.Hour)
	from := to.Add(-6 * time.Hour)
	var skew atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	f, _ := vaultsim.ParseFaults("late=0.3")
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 10, Orgs: 2, From: from, To: to, Rate: 600, Faults: f, Now: clock})
	e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from, lookback: 3})
	if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
		t.Fatalf("sync: %d\n%s", r.code, r.stdout)
	}
	want := sim.EventIDs("org_1", from, to)
	if got := idsByOrg(t, e.out)["org_1"]; len(got) >= len(want) {
		t.Fatalf("late events were visible at once (%d of %d)", len(got), len(want))
	}
	skew.Store(int64(3 * time.Hour)) // the API's time passes: late events appear
	if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
		t.Fatalf("second sync: %d\n%s", r.code, r.stdout)
	}
	got := idsByOrg(t, e.out)
	for _, org := range sim.Orgs() {
		exact(t, got, org, sim.EventIDs(org, from, to))
	}
}

// TestFaultOffHostLink: a next link to another host stops the org with an
// error naming it; the other host never sees a request.
func TestFaultOffHostLink(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int64
	other := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) })}
	go func() { _ = other.Serve(ln) }()
	t.Cleanup(func() { _ = other.Close() })
	to := time.Now().UTC().Truncate(time.Hour)
	from := to.Add(-3 * time.Hour)
	f, _ := vaultsim.ParseFaults("offhost=1")
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 11, Orgs: 1, From: from, To: to, Rate: 600, Faults: f,
		Profile: vaultsim.ProfileLink, OffHost: ln.Addr().String()})
	e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from})
	r := run(t, "sync", "--config", e.cfg)
	if r.code != 1 || !strings.Contains(lineOf(r.stdout, "org_1"), "another host") {
		t.Fatalf("want exit 1 naming the off-host link, got %d\n%s", r.code, r.stdout)
	}
	if hits.Load() != 0 {
		t.Fatalf("the other host got %d requests", hits.Load())
	}
	if files := parquetFiles(t, e.out); len(files) != 0 {
		t.Fatalf("files written for a window that could not be walked: %v", files)
	}
}

// TestFaultCorruptCheckpoint: an unparseable checkpoint is a loud error
// naming the file; the org writes nothing; other orgs go on.
func TestFaultCorruptCheckpoint(t *testing.T) {
	to := time.Now().UTC().Truncate(time.Hour)
	from := to.Add(-3 * time.Hour)
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 12, Orgs: 2, From: from, To: to, Rate: 300})
	e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from})
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(e.state, "org_1.json")
	if err := os.WriteFile(bad, []byte(`{"org_id":"org_1","end":`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "sync", "--config", e.cfg)
	if r.code == 0 {
		t.Fatalf("sync with a corrupt checkpoint exited 0\n%s", r.stdout)
	}
	if line := lineOf(r.stdout, "org_1"); !strings.Contains(line, "failed") || !strings.Contains(line, bad) {
		t.Errorf("the summary does not name the corrupt file %s: %q", bad, line)
	}
	got := idsByOrg(t, e.out)
	if len(got["org_1"]) != 0 {
		t.Errorf("org_1 wrote %d rows despite its unreadable checkpoint", len(got["org_1"]))
	}
	exact(t, got, "org_2", sim.EventIDs("org_2", from, to))
	if b, _ := os.ReadFile(bad); string(b) != `{"org_id":"org_1","end":` {
		t.Errorf("the corrupt checkpoint was overwritten: %q", b)
	}
	s := run(t, "checkpoint", "show", "--config", e.cfg, "--org", "org_1")
	if s.code == 0 || !strings.Contains(s.stderr+s.stdout, bad) {
		t.Errorf("checkpoint show: exit %d without naming %s:\n%s%s", s.code, bad, s.stdout, s.stderr)
	}
}

// TestFaultDiskFull: the sink's file system fills up mid-run. The org fails
// with ENOSPC named; no partial file is visible; the checkpoint does not
// pass a window without its file; once space is freed the next sync
// finishes exactly. Needs root to mount a tmpfs; skipped otherwise.
func TestFaultDiskFull(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "small")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v %s", err, out)
	}
	var once sync.Once
	unmount := func() { once.Do(func() { _ = exec.Command("umount", mnt).Run() }) }
	t.Cleanup(unmount)
	to := time.Now().UTC().Truncate(time.Hour)
	from := to.Add(-12 * time.Hour)
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 13, Orgs: 2, From: from, To: to, Rate: 2000})
	e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from, out: filepath.Join(mnt, "out")})
	r := run(t, "sync", "--config", e.cfg)
	if r.code != 1 || !strings.Contains(r.stdout, "no space left on device") {
		t.Fatalf("want exit 1 naming ENOSPC, got %d\n%s", r.code, r.stdout)
	}
	for _, f := range parquetFiles(t, e.out) {
		if strings.HasPrefix(filepath.Base(f), ".") {
			t.Errorf("temp file visible: %s", f)
		}
	}
	// Every visible file is whole (DuckDB reads all of them) and the
	// checkpoints never pass a window without its file.
	_ = idsByOrg(t, e.out)
	checkpointsCovered(t, e, sim.Orgs(), from)

	if out, err := exec.Command("mount", "-o", "remount,size=64m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount bigger: %v %s", err, out)
	}
	if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
		t.Fatalf("sync after freeing space: %d\n%s", r.code, r.stdout)
	}
	got := idsByOrg(t, e.out)
	for _, org := range sim.Orgs() {
		exact(t, got, org, sim.EventIDs(org, from, to))
	}
}

// TestFaultClockSkew: the API's clock runs 15 minutes behind the daemon's.
// Windows are judged closed by the API's clock (its Date headers), so
// whatever settle is, no window is committed before the API has filled it:
// nothing is lost, the skew is reported, and the windows the API had not
// closed are pulled once it has.
func TestFaultClockSkew(t *testing.T) {
	const skew = 15 * time.Minute
	for _, settle := range []time.Duration{5 * time.Minute, 20 * time.Minute} {
		t.Run(fmt.Sprintf("settle=%s", settle), func(t *testing.T) {
			var behind atomic.Int64
			behind.Store(int64(skew))
			apiNow := func() time.Time { return time.Now().Add(-time.Duration(behind.Load())) }
			now := time.Now().UTC()
			from := now.Add(-3 * time.Hour).Truncate(time.Hour)
			sim := vaultsim.Start(t, vaultsim.Config{Seed: 14, Orgs: 1, From: from, Rate: 6000, Live: true, Now: apiNow})
			e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from, window: "5m",
				settle: settle.String(), lookback: 0})
			r := run(t, "sync", "--config", e.cfg)
			if r.code != 0 {
				t.Fatalf("sync: %d\n%s", r.code, r.stdout)
			}
			if !strings.Contains(r.stderr, "clock differs") {
				t.Errorf("the skew was not reported:\n%s", tailLines(r.stderr, 5))
			}
			behind.Store(0) // the API catches up
			to := now.Add(-settle).Truncate(5 * time.Minute)
			v := run(t, "verify", "--config", e.cfg, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339))
			if v.code != 0 {
				t.Fatalf("verify after the API caught up: exit %d (nothing may be missing: windows the API had not closed are not synced yet)\n%s", v.code, tailLines(v.stdout, 5))
			}
			if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
				t.Fatalf("second sync: %d\n%s", r.code, r.stdout)
			}
			if v := run(t, "verify", "--config", e.cfg, "--from", from.Format(time.RFC3339), "--to", to.Format(time.RFC3339)); v.code != 0 {
				t.Fatalf("verify after the second sync: exit %d\n%s", v.code, tailLines(v.stdout, 5))
			}
		})
	}
}

func lineOf(out, org string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == org {
			return l
		}
	}
	return ""
}

func tailLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// checkpointsCovered: for every org, each window before its checkpoint has
// a data file (these tests' windows all hold events).
func checkpointsCovered(t *testing.T, e *env, orgs []string, from time.Time) {
	t.Helper()
	r := run(t, "checkpoint", "list", "--config", e.cfg)
	files := strings.Join(parquetFiles(t, e.out), "\n")
	for _, org := range orgs {
		f := strings.Fields(lineOf(r.stdout, org))
		if len(f) < 2 || f[1] == "-" {
			continue
		}
		end, err := time.Parse(time.RFC3339, f[1])
		if err != nil {
			t.Fatalf("checkpoint list: %q: %v", lineOf(r.stdout, org), err)
		}
		for w := from; w.Before(end); w = w.Add(time.Hour) {
			if !strings.Contains(files, "org_id="+org+"/") || !strings.Contains(files, "events-"+w.Format("20060102T1504Z")) {
				t.Fatalf("checkpoint of %s is %s but window %s has no file", org, end.Format(time.RFC3339), w.Format(time.RFC3339))
			}
		}
	}
}
