package runner

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// CrashPointEnv names the test-only crash hook. The chaos harness
// (test/chaos) sets it to "<point>:<n>" so that the process SIGKILLs itself
// the n-th time it reaches <point>: kills then land exactly where a random
// timer rarely does, such as after the sink commit and before the checkpoint
// write. Points: "page" (a decoded page is about to go into the sink unit),
// "before-commit" (every page is encoded, Commit not called yet),
// "after-commit" (the unit is committed, the checkpoint not yet moved),
// "after-checkpoint". Unset (everywhere but that harness) the hook does
// nothing; it is read once at start.
const CrashPointEnv = "VAULTSINK_TEST_CRASH_POINT"

type crashPoint struct {
	name string
	left atomic.Int64
}

var crash = parseCrashPoint(os.Getenv(CrashPointEnv))

func parseCrashPoint(v string) *crashPoint {
	name, n, ok := strings.Cut(v, ":")
	if !ok || name == "" {
		return nil
	}
	k, err := strconv.ParseInt(n, 10, 64)
	if err != nil || k < 1 {
		return nil
	}
	c := &crashPoint{name: name}
	c.left.Store(k)
	return c
}

// crashAt kills the process (as SIGKILL would: no deferred code, no flush)
// when the configured point is reached for the configured time.
func crashAt(point string) {
	c := crash
	if c == nil || c.name != point {
		return
	}
	if c.left.Add(-1) == 0 {
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Kill()
		}
		select {} // the signal is on its way; never run past the point
	}
}
