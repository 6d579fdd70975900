package main

import (
	"context"
	"debug/buildinfo"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// platform is a GOOS/GOARCH pair.
type platform struct{ OS, Arch string }

func (p platform) String() string { return p.OS + "/" + p.Arch }

// elfMachine is the ELF machine of each supported arch (the linux binaries
// are checked against it; darwin ones are Mach-O).
var elfMachine = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

func parsePlatform(s string) (platform, error) {
	goos, arch, ok := strings.Cut(s, "/")
	p := platform{OS: goos, Arch: arch}
	switch {
	case !ok:
		return p, fmt.Errorf("platform %q: want os/arch, e.g. linux/amd64", s)
	case goos != "linux" && goos != "darwin":
		return p, fmt.Errorf("platform %q: os must be linux or darwin", s)
	case elfMachine[arch] == 0:
		return p, fmt.Errorf("platform %q: arch must be amd64 or arm64", s)
	}
	return p, nil
}

// validVersion keeps the version usable in file names, labels and tags.
var validVersion = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)

// buildBinary builds ./cmd/vaultsink for p into out, reproducibly: no cgo, no
// local paths (-trimpath), no build id, the version set with -X. The go
// command is the one on PATH (the Makefile's GOTOOLCHAIN picks the release;
// `go test` and `go run` put their own first on PATH), run in the module
// root dir so that the VCS stamp (vcs.revision, vcs.time) is recorded.
func buildBinary(ctx context.Context, dir string, p platform, version, out string) error {
	if !validVersion.MatchString(version) {
		return fmt.Errorf("version %q: want letters, digits and . _ + - (git describe output)", version)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=true",
		"-ldflags", "-s -w -buildid= -X main.version="+version,
		"-o", out, "./cmd/vaultsink")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", p, err, b)
	}
	return nil
}

// buildMeta is what a binary's embedded build info says about its source.
type buildMeta struct {
	Module    string    // main module path, e.g. github.com/vaultsink/vaultsink
	Revision  string    // vcs.revision
	Time      time.Time // vcs.time: the commit time
	Modified  bool      // vcs.modified: built from a dirty tree
	GoVersion string
}

func readBuildMeta(path string) (buildMeta, *buildinfo.BuildInfo, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return buildMeta{}, nil, fmt.Errorf("read build info of %s: %w", path, err)
	}
	m := buildMeta{Module: bi.Main.Path, GoVersion: bi.GoVersion}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			m.Revision = s.Value
		case "vcs.time":
			if m.Time, err = time.Parse(time.RFC3339, s.Value); err != nil {
				return m, nil, fmt.Errorf("%s: vcs.time %q: %w", path, s.Value, err)
			}
		case "vcs.modified":
			m.Modified = s.Value == "true"
		}
	}
	if m.Revision == "" || m.Time.IsZero() {
		return m, nil, fmt.Errorf("%s has no VCS stamp (vcs.revision, vcs.time): build it in a git checkout", path)
	}
	return m, bi, nil
}

// checkStaticELF refuses a binary that is not a static ELF executable for p:
// the image has no dynamic loader or libc, so anything else fails at exec.
func checkStaticELF(path string, p platform) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elfMachine[p.Arch] {
		return fmt.Errorf("%s is built for %s, not %s", path, f.Machine, p)
	}
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (PT_INTERP): build it with CGO_ENABLED=0", path)
		}
	}
	if _, err := f.DynamicSymbols(); !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("%s has dynamic symbols: build it with CGO_ENABLED=0", path)
	}
	return nil
}
