package runner

import (
	"os"
	"os/exec"
	"strconv"
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
	for _, tc := range []struct {
		owner string
		dead  bool
	}{
		{host + "-" + strconv.Itoa(gone), true},
		{host + "-" + strconv.Itoa(alive), false},
		{host + "-" + strconv.Itoa(os.Getpid()), false},
		{"other-host-" + strconv.Itoa(gone), false},
		{"daemon-a", false},
		{host + "-notapid", false},
	} {
		if got := deadLocalOwner(tc.owner); got != tc.dead {
			t.Errorf("deadLocalOwner(%q) = %t, want %t", tc.owner, got, tc.dead)
		}
	}
}
