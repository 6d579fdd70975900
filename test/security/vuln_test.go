package security_test

import (
	"bytes"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
)

// TestGovulncheck runs govulncheck over the module against the offline
// vulnerability database that `make tools` builds from the golang.org/x/vulndb
// module (the only way to reach the database from machines that reach only
// the Go module proxy). Any reachable vulnerability fails the test, in a
// dependency (bump the module) or in the standard library (bump the Go
// toolchain: the Makefile's GOTOOLCHAIN, go.mod's toolchain line and the
// Dockerfile's builder, which TestToolchainPinned keeps in step).
func TestGovulncheck(t *testing.T) {
	db := os.Getenv("VAULTSINK_VULNDB")
	if db == "" {
		t.Skip("VAULTSINK_VULNDB is not set: run through `make test`, which builds the offline database")
	}
	bin, err := exec.LookPath("govulncheck")
	if err != nil {
		t.Fatalf("VAULTSINK_VULNDB is set but govulncheck is not on PATH: %v", err)
	}
	// A govulncheck built by an older Go cannot type-check code for a newer
	// one, and is itself a stale build: `make tools` rebuilds it.
	if info, err := buildinfo.ReadFile(bin); err != nil {
		t.Fatalf("read the build info of %s: %v", bin, err)
	} else if info.GoVersion != runtime.Version() {
		t.Fatalf("%s was built with %s, the tests with %s: run `make tools` to rebuild it", bin, info.GoVersion, runtime.Version())
	}
	abs, err := filepath.Abs(db)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-db", "file://"+abs, "-format", "json", "./...")
	cmd.Dir = "../.."
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("govulncheck: %v\n%s", err, stderr.String())
	}
	type frame struct {
		Module, Version, Package, Function, Receiver string
	}
	type finding struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	}
	type config struct {
		GoVersion string `json:"go_version"`
		DB        string `json:"db"`
		ScanLevel string `json:"scan_level"`
	}
	dec := json.NewDecoder(&out)
	called := map[string]finding{}
	var cfg *config
	messages := 0
	for {
		var msg struct {
			Config  *config  `json:"config"`
			Finding *finding `json:"finding"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode govulncheck output: %v", err)
		}
		messages++
		if msg.Config != nil {
			cfg = msg.Config
		}
		if f := msg.Finding; f != nil && len(f.Trace) > 0 && f.Trace[0].Function != "" {
			called[f.OSV+" "+f.Trace[0].Module] = *f
		}
	}
	if messages < 3 || cfg == nil {
		t.Fatalf("govulncheck printed %d messages and no config: nothing was checked", messages)
	}
	// The standard library checked is the one the tests, and `make build`, use.
	if cfg.GoVersion != runtime.Version() {
		t.Errorf("govulncheck checked the standard library of %s, the build uses %s", cfg.GoVersion, runtime.Version())
	}
	if cfg.ScanLevel != "symbol" {
		t.Errorf("govulncheck scan level %q, want symbol (reachability)", cfg.ScanLevel)
	}
	t.Logf("govulncheck: %s standard library, database %s", cfg.GoVersion, cfg.DB)
	symbol := func(fr frame) string {
		if fr.Receiver != "" {
			return fr.Package + "." + strings.TrimPrefix(fr.Receiver, "*") + "." + fr.Function
		}
		return fr.Package + "." + fr.Function
	}
	var problems []string
	for _, f := range called {
		m := f.Trace[0]
		sym := symbol(m)
		via := ""
		if len(f.Trace) > 1 {
			via = ", called from " + symbol(f.Trace[len(f.Trace)-1])
		}
		if m.Module == "stdlib" {
			problems = append(problems, f.OSV+" in the standard library of "+cfg.GoVersion+" ("+sym+via+
				") is reachable from our code: fixed in go"+strings.TrimPrefix(f.FixedVersion, "v")+
				"; bump GOTOOLCHAIN in the Makefile, go.mod's toolchain line and the Dockerfile's builder")
			continue
		}
		problems = append(problems, f.OSV+" in "+m.Module+"@"+m.Version+" ("+sym+via+
			") is reachable from our code: fixed in "+f.FixedVersion+"; bump the module")
	}
	sort.Strings(problems)
	for _, p := range problems {
		t.Error(p)
	}
}

// TestToolchainPinned checks that the Makefile builds with the Go release
// go.mod's toolchain line names (deploy/deploy_test.go checks the
// Dockerfile's builder against the same line), and that this test was built
// with it: the vulnerability check above is only as good as that pin.
func TestToolchainPinned(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	tc := regexp.MustCompile(`(?m)^toolchain (go\S+)$`).FindSubmatch(mod)
	if tc == nil {
		t.Fatal("go.mod has no toolchain line")
	}
	want := string(tc[1])
	m := regexp.MustCompile(`(?m)^export GOTOOLCHAIN :?= *(\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile does not export GOTOOLCHAIN: this machine's Go would ignore go.mod's toolchain line")
	}
	if got := string(m[1]); got != want {
		t.Errorf("the Makefile exports GOTOOLCHAIN=%s, go.mod names toolchain %s", got, want)
	}
	if runtime.Version() != want {
		t.Errorf("this test was built with %s, not %s (go.mod's toolchain): run it through make, or with GOTOOLCHAIN=%s", runtime.Version(), want, want)
	}
}
