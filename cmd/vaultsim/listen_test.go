package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets a test run this binary's main with its own arguments.
func TestMain(m *testing.M) {
	if os.Getenv("VAULTSIM_TEST_MAIN") == "1" {
		os.Args = append([]string{"vaultsim"}, strings.Fields(os.Getenv("VAULTSIM_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestServeTakenPort: serve on a port another process holds exits non-zero
// with a message naming the address and what to do, and writes no token
// files first (the demo waits for them, then would talk to the other server).
func TestServeTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tokens := filepath.Join(t.TempDir(), "tokens")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "VAULTSIM_TEST_MAIN=1",
		"VAULTSIM_TEST_ARGS=serve --addr "+ln.Addr().String()+" --orgs 1 --tokens-dir "+tokens)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("serve on a taken port: err %v, output:\n%s", err, out)
	}
	for _, want := range []string{"cannot listen on " + ln.Addr().String(), "already in use", "--addr"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := os.Stat(tokens); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("token files written before the listen failed (stat: %v)", err)
	}
}
