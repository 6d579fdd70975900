package faults_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// TestIdlePassCost: 1,000 orgs, every one current, and three `run`
// replicas sharing one config and one S3 checkpoint store (versitygw
// behind a proxy that counts requests by org). While nothing is due, a
// replica's pass reads at most one checkpoint per org and writes none,
// and the replicas together read each org about once each, however many
// ticks pass: an idle tick used to take and release every org's lease
// (1 GET and 2 PUTs per org per tick and replica).
func TestIdlePassCost(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 orgs and three daemons")
	}
	const orgs, replicas = 1000, 3
	// Nothing may fall due while the replicas run: stay clear of the hour.
	if left := time.Until(time.Now().Truncate(time.Hour).Add(time.Hour)); left < 2*time.Minute {
		t.Logf("waiting %s for the hour to turn", left.Round(time.Second))
		time.Sleep(left + 5*time.Second)
	}
	hour := time.Now().UTC().Truncate(time.Hour)
	from := hour.Add(-time.Hour)
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 61, Orgs: orgs, From: from, To: hour.Add(time.Hour), Rate: 6})

	srv := s3test.Versity(t)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	org := regexp.MustCompile(`/vaultsink/state/(org_\d+)\.json$`)
	var mu sync.Mutex
	counting := false
	reads := map[string]int{}                           // org -> GET/HEAD while counting
	writes := map[string]int{}                          // org -> any other method while counting
	other := map[string]int{}                           // method -> requests not for an org's checkpoint
	proxy := httputil.NewSingleHostReverseProxy(target) // keeps the Host the client signed
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if counting {
			m := org.FindStringSubmatch(r.URL.Path)
			switch {
			case m == nil:
				other[r.Method]++
			case r.Method == http.MethodGet || r.Method == http.MethodHead:
				reads[m[1]]++
			default:
				writes[m[1]]++
			}
		}
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	e := newEnv(t, cfgOpts{url: sim.URL, tokens: simTokens(sim), start: from})
	useS3CheckpointsAt(t, e, srv, front.URL)
	data, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(string(data), "concurrency: 3\n", "concurrency: 16\nschedule: \"@every 2s\"\njitter: 1s\n", 1)
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "sync", "--config", e.cfg); r.code != 0 {
		t.Fatalf("first sync: exit %d\n%.3000s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
	}

	mu.Lock()
	counting = true
	mu.Unlock()
	type daemon struct {
		cmd    *exec.Cmd
		stderr *bytes.Buffer
	}
	var ds []daemon
	for range replicas {
		var se bytes.Buffer
		cmd := exec.Command(vaultsinkBinary(t), "run", "--config", e.cfg)
		cmd.Stderr = &se
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, daemon{cmd, &se})
	}
	time.Sleep(15 * time.Second)
	passes := 0
	for i, d := range ds {
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- d.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("replica %d: %v\n%s", i, err, tailLines(d.stderr.String(), 10))
			}
		case <-time.After(30 * time.Second):
			_ = d.cmd.Process.Kill()
			t.Errorf("replica %d did not stop within 30s of SIGTERM", i)
		}
		n := strings.Count(d.stderr.String(), `"msg":"pass done"`)
		if n < 3 {
			t.Errorf("replica %d finished %d passes in 15s, want at least 3:\n%s", i, n, tailLines(d.stderr.String(), 10))
		}
		if w := strings.Count(d.stderr.String(), `"windows":0`); w != n {
			t.Errorf("replica %d: %d of %d passes committed windows although every org was current", i, n-w, n)
		}
		passes += n
	}
	mu.Lock()
	defer mu.Unlock()
	counting = false
	totalReads, totalWrites, most := 0, 0, 0
	for _, n := range reads {
		totalReads += n
		most = max(most, n)
	}
	for _, n := range writes {
		totalWrites += n
	}
	t.Logf("%d orgs, %d replicas, %d idle passes: %d checkpoint reads (at most %d for one org), %d checkpoint writes, other requests %v",
		orgs, replicas, passes, totalReads, most, totalWrites, other)
	if totalWrites != 0 {
		t.Errorf("%d checkpoint writes during idle passes, want none (%d orgs written)", totalWrites, len(writes))
	}
	if len(reads) != orgs {
		t.Errorf("%d orgs read, want %d (each replica looks at every org once)", len(reads), orgs)
	}
	// At most one read per org per pass and replica …
	if most > passes {
		t.Errorf("one org read %d times in %d passes", most, passes)
	}
	// … and an org whose next window is an hour away is not read again:
	// the replicas together cost about one read per org each, not one
	// per tick.
	if totalReads > orgs*replicas {
		t.Errorf("%d checkpoint reads in %d passes, want at most %d (one per org and replica)", totalReads, passes, orgs*replicas)
	}
}
