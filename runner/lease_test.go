package runner

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestDeadLocalOwner(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip("no hostname:", err)
	}
	// A process that has exited: its pid is free (until reused, which would
	// only make the lease look held — the safe side).
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("cannot run true:", err)
	}
	gone := cmd.Process.Pid
	alive := os.Getppid()
	id := func(label, host string, pid int) string { return fmt.Sprintf("%s@%s:%d:0a1b2c3d", label, host, pid) }
	for _, tc := range []struct {
		owner string
		dead  bool
	}{
		{id("daemon", host, gone), true},
		{id("daemon", host, alive), false},
		{id("daemon", host, os.Getpid()), false},
		{id("daemon", "other-host", gone), false},
		{"daemon-a", false},
		{host + "-" + fmt.Sprint(gone), false}, // the owner format of earlier versions: held until it expires
		{"daemon@" + host + ":notapid:00", false},
	} {
		if got := deadLocalOwner(tc.owner); got != tc.dead {
			t.Errorf("deadLocalOwner(%q) = %t, want %t", tc.owner, got, tc.dead)
		}
	}
}

// TestOwnerIDUnique: two processes (or engines) with the same label, host
// and pid still get different owners.
func TestOwnerIDUnique(t *testing.T) {
	a, b := OwnerID("replica"), OwnerID("replica")
	if a == b || !strings.HasPrefix(a, "replica@") || !strings.HasPrefix(OwnerID(""), "vaultsink@") {
		t.Fatalf("OwnerID: %q, %q", a, b)
	}
	if !deadLocalOwner(strings.Replace(a, fmt.Sprintf(":%d:", os.Getpid()), ":999999999:", 1)) {
		t.Fatalf("an OwnerID of a gone pid of this host is not recognised: %s", a)
	}
}
