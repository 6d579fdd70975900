package deploy_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDemoStopsOnTakenPort: when another server holds the simulator's port,
// make demo stops with the simulator's message and never runs vaultsink
// against the other server.
func TestDemoStopsOnTakenPort(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	root := repoRoot(t)
	tree := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tree, "deploy", "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"demo.sh", "demo.yaml"} {
		b := readFile(t, "deploy/demo/"+f)
		if err := os.WriteFile(filepath.Join(tree, "deploy", "demo", f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command("go", "build", "-o", filepath.Join(tree, "bin", "vaultsim"), "./cmd/vaultsim")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build vaultsim: %v\n%s", err, out)
	}
	// vaultsink must not be reached: the stub says so if it is.
	stub := "#!/bin/sh\necho 'vaultsink was run' >&2\nexit 99\n"
	if err := os.WriteFile(filepath.Join(tree, "bin", "vaultsink"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)

	cmd := exec.Command("bash", filepath.Join(tree, "deploy", "demo", "demo.sh"))
	cmd.Env = append(os.Environ(), "DEMO_PORT="+port)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("demo with port %s taken: err %v, want exit status 1\n%s", port, err, out)
	}
	for _, want := range []string{"cannot listen on 127.0.0.1:" + port, "already in use", "DEMO_PORT=0 make demo"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "vaultsink was run") {
		t.Errorf("the demo ran vaultsink against the server holding the port:\n%s", out)
	}
}
