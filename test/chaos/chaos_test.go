package chaos_test

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// chaosFaults turns on every simulator fault that a correct client survives.
const chaosFaults = "429=0.05,500=0.02,502=0.02,503=0.02,slow=0.02,cut=0.02,malformed=0.02,dup=0.05,late=0.2"

func chaosSeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v, err := strconv.ParseUint(os.Getenv("VAULTSINK_CHAOS_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("schedule seed %d (VAULTSINK_CHAOS_SEED=%d reproduces the kill schedule)", seed, seed)
	return seed
}

// chaosHistory is a history ending at the last closed window, with late
// events in its last 15 seconds still hidden when the test starts: they appear
// while vaultsink is being killed, so only lookback brings them in.
func chaosHistory(window time.Duration, windows int) (from, to time.Time, lateDelay time.Duration, visible time.Time) {
	now := time.Now().UTC()
	to = now.Truncate(window)
	from = to.Add(-time.Duration(windows) * window)
	lateDelay = now.Sub(to).Round(time.Second) + 15*time.Second
	return from, to, lateDelay, to.Add(lateDelay)
}

func TestChaosLocal(t *testing.T) {
	t.Parallel()
	kills := envInt("VAULTSINK_CHAOS_KILLS", 10)
	seed := chaosSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	const window = 15 * time.Minute
	from, to, lateDelay, visible := chaosHistory(window, 48)
	sim := startSim(t, simOpts{seed: seed%1000 + 1, orgs: 3, rate: 2500, from: from, to: to,
		faults: chaosFaults, lateDelay: lateDelay, latency: 3 * time.Millisecond})
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfg := chaosConfig(t, dir, sim, window, 100, "  type: local\n  path: "+out, "")

	f := chaos(t, cfg, sim, kills, rng, window, 7, 1500*time.Millisecond)
	// The hidden late events must have surfaced before the last sync, so
	// that it is lookback (not luck) that brings them in.
	if d := time.Until(visible); d > 0 {
		t.Logf("waiting %s for the last late events to become visible", d.Round(time.Second))
		time.Sleep(d + time.Second)
	}
	finish(t, cfg, sim, &f)
	checkTruth(t, out, sim.truth(t), &f)
	checkTree(t, out, &f)
	checkStateDir(t, filepath.Join(dir, "state"))
	t.Logf("chaos figures (local): %v", f)
	if f.totalKills() < kills {
		t.Fatalf("only %d kills, want %d", f.totalKills(), kills)
	}
}

// checkStateDir: checkpoints are 0600 files, and a kill during a write
// leaves at most a hidden temp file, never a torn checkpoint.
func checkStateDir(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if e.IsDir() {
			continue
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("checkpoint file %s has mode %v, want 0600", e.Name(), perm)
		}
		if filepath.Ext(e.Name()) != ".json" && e.Name() != ".lock" {
			// A kill during a checkpoint write leaves its hidden temp
			// file: never read, but not cleaned up either.
			t.Logf("state dir holds %s (a temp file of a killed write)", e.Name())
		}
	}
}

// TestChaosRestartWithNewOwner: after a kill, a restart finds the dead
// process's lease. On the same host it takes it back at once (the pid is
// gone, see runner.deadLocalOwner); a lease of another host's process (a
// pod rescheduled elsewhere: simulated by giving the lease another host)
// holds: the restart must not write while it does, and must catch up
// exactly once it expires.
func TestChaosRestartWithNewOwner(t *testing.T) {
	t.Parallel()
	const window = time.Hour
	from, to, lateDelay, _ := chaosHistory(window, 4)
	sim := startSim(t, simOpts{seed: 77, orgs: 1, rate: 2000, from: from, to: to, lateDelay: lateDelay})
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	cfg := chaosConfig(t, dir, sim, window, 500, "  type: local\n  path: "+out, "")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 3 * time.Second
	owner := func(name string) string {
		p := filepath.Join(dir, name+".yaml")
		s := strings.Replace(string(b), "owner: chaos-host\n  ttl: 10m", "owner: "+name+"\n  ttl: "+ttl.String(), 1)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	first, second := owner("first"), owner("second")
	o := vaultsink(t, []string{"VAULTSINK_TEST_CRASH_POINT=after-checkpoint:1"}, 0, time.Minute, "sync", "--config", first)
	if !o.killed {
		t.Fatalf("the crash point did not fire: %s", o)
	}
	killedAt := time.Now()
	// The dead process's lease, as if it had run on another host.
	files, _ := filepath.Glob(filepath.Join(dir, "state", "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`"owner": "first@[^"]*"`)
		if !re.Match(data) {
			t.Fatalf("%s holds no lease of the killed process:\n%s", f, data)
		}
		if err := os.WriteFile(f, re.ReplaceAll(data, []byte(`"owner": "first@another-host:4242:0badcafe"`)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	o = vaultsink(t, nil, 0, time.Minute, "sync", "--config", second)
	if time.Since(killedAt) < ttl {
		if !strings.Contains(o.stdout, "yielded") {
			t.Fatalf("a restart within another host's lease TTL did not yield:\n%s", o.stdout)
		}
		t.Logf("restart within the lease TTL: %s, summary %q", o, strings.TrimSpace(o.stdout))
	}
	time.Sleep(time.Until(killedAt.Add(ttl + 500*time.Millisecond)))
	finish(t, second, sim, &figures{kills: map[string]int{}})
	f := figures{kills: map[string]int{}}
	checkTruth(t, out, sim.truth(t), &f)
}
