package security_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestGovulncheck runs govulncheck over the module against the offline
// vulnerability database that `make tools` builds from the golang.org/x/vulndb
// module (the only way to reach the database from machines that reach only
// the Go module proxy). A reachable vulnerability in a dependency fails the
// test; one in the standard library is fixed by building with a newer Go
// patch release than this machine's, so it is reported, not failed (the
// README says which).
func TestGovulncheck(t *testing.T) {
	db := os.Getenv("VAULTSINK_VULNDB")
	if db == "" {
		t.Skip("VAULTSINK_VULNDB is not set: run through `make test`, which builds the offline database")
	}
	bin, err := exec.LookPath("govulncheck")
	if err != nil {
		t.Fatalf("VAULTSINK_VULNDB is set but govulncheck is not on PATH: %v", err)
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
		Module, Version, Package, Function string
	}
	type finding struct {
		OSV          string  `json:"osv"`
		FixedVersion string  `json:"fixed_version"`
		Trace        []frame `json:"trace"`
	}
	dec := json.NewDecoder(&out)
	called := map[string]finding{}
	messages := 0
	for {
		var msg struct {
			Finding *finding `json:"finding"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode govulncheck output: %v", err)
		}
		messages++
		if f := msg.Finding; f != nil && len(f.Trace) > 0 && f.Trace[0].Function != "" {
			called[f.OSV+" "+f.Trace[0].Module] = *f
		}
	}
	if messages < 3 {
		t.Fatalf("govulncheck printed %d messages: nothing was checked", messages)
	}
	var stdlib []string
	for _, f := range called {
		m := f.Trace[0]
		if m.Module == "stdlib" {
			stdlib = append(stdlib, f.OSV+" ("+m.Package+", fixed in go"+strings.TrimPrefix(f.FixedVersion, "v")+")")
			continue
		}
		t.Errorf("%s in %s@%s is reachable from our code (fixed in %s): bump the module", f.OSV, m.Module, m.Version, f.FixedVersion)
	}
	sort.Strings(stdlib)
	for _, s := range stdlib {
		t.Logf("standard library: %s — build with that Go release or newer", s)
	}
}
