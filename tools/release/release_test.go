package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The tests build one release, for the host's arch only (a cold arm64
// build of the whole dependency tree takes minutes), exactly as `make
// release` does, and read it back. They build from a clone of the
// repository's HEAD, as a release is built from a tagged commit: a working
// tree being edited meanwhile would make two builds differ.
const testVersion = "v0.0.0-releasetest"

const hostCerts = "/etc/ssl/certs/ca-certificates.crt"

var (
	distOnce sync.Once
	distDir  string
	distErr  error
	tmpRoot  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpRoot != "" {
		_ = os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

func hostPlatform(t *testing.T) platform {
	t.Helper()
	p, err := parsePlatform("linux/" + runtime.GOARCH)
	if err != nil {
		t.Skipf("no release image for this machine's arch: %v", err)
	}
	if _, err := os.Stat(hostCerts); err != nil {
		t.Skipf("no CA bundle at %s (Debian: apt-get install ca-certificates): %v", hostCerts, err)
	}
	return p
}

// runDist runs the release into a new directory under the shared temp root.
func runDist(t *testing.T, name string) string {
	t.Helper()
	p := hostPlatform(t)
	src := sourceTree(t)
	out := filepath.Join(tmpRoot, name)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	err := dist(ctx, distOptions{Root: src, Out: out, Version: testVersion, Platforms: []platform{p}, Certs: hostCerts, CertsOrigin: "the test machine"}, &progress)
	if err != nil {
		t.Fatalf("dist: %v\n%s", err, progress.String())
	}
	return out
}

// sourceTree returns a clone of the repository's HEAD under the temp root,
// made on first use (git clone --shared: the objects are not copied).
func sourceTree(t *testing.T) string {
	t.Helper()
	if tmpRoot == "" {
		dir, err := os.MkdirTemp("", "vaultsink-release-test-")
		if err != nil {
			t.Fatal(err)
		}
		repo, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
		if err != nil {
			t.Fatalf("git rev-parse --show-toplevel: %v", err)
		}
		src := filepath.Join(dir, "src")
		if out, err := exec.Command("git", "clone", "-q", "--shared", strings.TrimSpace(string(repo)), src).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		tmpRoot = dir
	}
	return filepath.Join(tmpRoot, "src")
}

// sharedDist is the release most tests read.
func sharedDist(t *testing.T) string {
	t.Helper()
	hostPlatform(t)
	distOnce.Do(func() {
		defer func() {
			if distDir == "" && distErr == nil {
				distErr = errors.New("dist failed in an earlier test")
			}
		}()
		distDir = runDist(t, "a")
	})
	if distErr != nil {
		t.Fatal(distErr)
	}
	return distDir
}

func gitOutput(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = sourceTree(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// layoutDigest is the digest of the image index in dir/oci.
func layoutDigest(t *testing.T, dir string) v1.Hash {
	t.Helper()
	idx, err := layoutIndex(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// layerFiles flattens an image's layers into path -> header and contents.
func layerFiles(t *testing.T, img v1.Image) (map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	hdrs, bodies := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := "/" + strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
		hdrs[p] = h
		if h.Typeflag == tar.TypeReg {
			if bodies[p], err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
	}
	return hdrs, bodies
}

// TestImage reads the image back from the OCI layout with
// go-containerregistry and checks what a container runtime would use.
func TestImage(t *testing.T) {
	dir := sharedDist(t)
	p := hostPlatform(t)
	top, err := layout.ImageIndexFromPath(filepath.Join(dir, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	topm, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(topm.Manifests) != 1 || topm.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != testVersion {
		t.Fatalf("index.json: %+v, want one index named %s", topm.Manifests, testVersion)
	}
	idx, err := top.ImageIndex(topm.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 1 {
		t.Fatalf("image index %s with %d manifests, want an OCI index of 1 (this arch)", im.MediaType, len(im.Manifests))
	}
	desc := im.Manifests[0]
	if desc.Platform == nil || desc.Platform.OS != "linux" || desc.Platform.Architecture != p.Arch {
		t.Errorf("index entry platform %+v, want linux/%s", desc.Platform, p.Arch)
	}
	if desc.ArtifactType != "" {
		t.Errorf("index entry artifactType %q, want none for an image", desc.ArtifactType)
	}

	// The labels, checked against git rather than against the binary's
	// build info that the release read them from.
	wantLabels := map[string]string{
		"org.opencontainers.image.title":    "vaultsink",
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": gitOutput(t, "rev-parse", "HEAD"),
		"org.opencontainers.image.source":   "https://github.com/vaultsink/vaultsink",
		"org.opencontainers.image.licenses": "Apache-2.0",
	}
	ct, err := time.Parse(time.RFC3339, gitOutput(t, "log", "-1", "--format=%cI", "HEAD"))
	if err != nil {
		t.Fatal(err)
	}
	wantLabels["org.opencontainers.image.created"] = ct.UTC().Format(time.RFC3339)
	for k, v := range wantLabels {
		if got := im.Annotations[k]; got != v {
			t.Errorf("index annotation %s = %q, want %q", k, got, v)
		}
	}

	img, err := idx.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil || mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s (%v), want %s", mt, err, types.OCIManifestSchema1)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != p.Arch || !cf.Created.Time.Equal(ct) {
		t.Errorf("config os/arch/created %s/%s/%s, want linux/%s/%s", cf.OS, cf.Architecture, cf.Created.Time, p.Arch, ct)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User %q, want 65532:65532", c.User)
	}
	if !slices.Equal(c.Entrypoint, []string{"/vaultsink"}) {
		t.Errorf("Entrypoint %q, want [/vaultsink]", c.Entrypoint)
	}
	if !slices.Equal(c.Cmd, []string{"run", "--config", "/etc/vaultsink/config.yaml"}) {
		t.Errorf("Cmd %q, want run --config /etc/vaultsink/config.yaml", c.Cmd)
	}
	if c.WorkingDir != "/home/nonroot" {
		t.Errorf("WorkingDir %q, want /home/nonroot", c.WorkingDir)
	}
	if _, ok := c.ExposedPorts["9464/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ExposedPorts %v, want 9464/tcp", c.ExposedPorts)
	}
	for _, e := range c.Env {
		if regexp.MustCompile(`(?i)token|secret|password|key|credential`).MatchString(e) {
			t.Errorf("Env %q looks like a secret: an image's config is public", e)
		}
	}
	if !maps.Equal(c.Labels, im.Annotations) {
		t.Errorf("config labels %v differ from the index annotations %v", c.Labels, im.Annotations)
	}
	if len(cf.History) != 2 {
		t.Errorf("%d history entries, want one per layer (2)", len(cf.History))
	}

	// Each layer's blob, as read back from the layout, hashes to its digest
	// and unzips to its diff id (the config's rootfs), as a runtime checks.
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 || len(cf.RootFS.DiffIDs) != 2 {
		t.Fatalf("%d layers, %d diff ids, want 2", len(layers), len(cf.RootFS.DiffIDs))
	}
	for i, l := range layers {
		want, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			what string
			open func() (io.ReadCloser, error)
			want v1.Hash
		}{{"digest", l.Compressed, want}, {"diff id", l.Uncompressed, cf.RootFS.DiffIDs[i]}} {
			rc, err := c.open()
			if err != nil {
				t.Fatal(err)
			}
			got, _, err := v1.SHA256(rc)
			rc.Close()
			if err != nil || got != c.want {
				t.Errorf("layer %d: %s %s (%v), want %s", i, c.what, got, err, c.want)
			}
		}
	}

	hdrs, bodies := layerFiles(t, img)
	bin := filepath.Join(dir, fmt.Sprintf("vaultsink-%s-linux-%s", testVersion, p.Arch))
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if h := hdrs["/vaultsink"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode&0o111 != 0o111 || h.Uid != 0 {
		t.Errorf("/vaultsink: %+v, want a root-owned regular file executable by all", h)
	} else if !bytes.Equal(bodies["/vaultsink"], want) {
		t.Errorf("/vaultsink differs from %s", bin)
	}
	// Static: the image has no dynamic loader.
	ef, err := elf.NewFile(bytes.NewReader(bodies["/vaultsink"]))
	if err != nil {
		t.Fatalf("/vaultsink: %v", err)
	}
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			t.Error("/vaultsink has a PT_INTERP program header: dynamically linked")
		}
	}
	if ef.Machine != elfMachine[p.Arch] {
		t.Errorf("/vaultsink is %s, want %s", ef.Machine, elfMachine[p.Arch])
	}
	certs, err := os.ReadFile(hostCerts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(bodies[certsPath], certs) {
		t.Errorf("%s: %d bytes, want the %d of %s", certsPath, len(bodies[certsPath]), len(certs), hostCerts)
	}
	if !regexp.MustCompile(`(?m)^nonroot:x:65532:65532:[^:]*:/home/nonroot:[^:]+$`).Match(bodies["/etc/passwd"]) {
		t.Errorf("/etc/passwd has no nonroot 65532 entry:\n%s", bodies["/etc/passwd"])
	}
	if !regexp.MustCompile(`(?m)^nonroot:x:65532:`).Match(bodies["/etc/group"]) {
		t.Errorf("/etc/group has no nonroot 65532 entry:\n%s", bodies["/etc/group"])
	}
	if h := hdrs["/home/nonroot"]; h == nil || h.Typeflag != tar.TypeDir || h.Uid != 65532 || h.Gid != 65532 {
		t.Errorf("/home/nonroot: %+v, want a directory owned by 65532", h)
	}
	if h := hdrs["/tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp: %+v, want mode 1777", h)
	}

	// The binary as the image ships it runs: extract it and ask its version.
	if runtime.GOOS != "linux" {
		return
	}
	exe := filepath.Join(t.TempDir(), "vaultsink")
	if err := os.WriteFile(exe, bodies["/vaultsink"], 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exe, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("vaultsink version: %v\n%s", err, out)
	}
	if w := fmt.Sprintf("vaultsink %s (%s, linux/%s)\n", testVersion, runtime.Version(), p.Arch); string(out) != w {
		t.Errorf("vaultsink version printed %q, want %q", out, w)
	}
}

// TestReproducible builds the release a second time: the binary, the SBOM,
// the OCI archive and so the image digests must be the same bytes. A
// different version must change the digest, or the comparison proves
// nothing.
func TestReproducible(t *testing.T) {
	a := sharedDist(t)
	b := runDist(t, "b")
	sa, err := os.ReadFile(filepath.Join(a, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := os.ReadFile(filepath.Join(b, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sa, sb) {
		t.Errorf("two builds of the same commit differ:\n%s\n---\n%s", sa, sb)
	}
	if n := strings.Count(string(sa), "\n"); n != 3 {
		t.Errorf("SHA256SUMS lists %d files, want 3 (binary, SBOM, OCI archive):\n%s", n, sa)
	}
	da, db := layoutDigest(t, a), layoutDigest(t, b)
	if da != db {
		t.Errorf("image index digests differ: %s, %s", da, db)
	}

	// Every line of SHA256SUMS is right (as `sha256sum -c` would check).
	for line := range strings.Lines(string(sa)) {
		sum, name, ok := strings.Cut(strings.TrimSpace(line), "  ")
		f, err := os.ReadFile(filepath.Join(a, name))
		if !ok || err != nil {
			t.Errorf("SHA256SUMS line %q: %v", line, err)
			continue
		}
		if got := sha256.Sum256(f); hex.EncodeToString(got[:]) != sum {
			t.Errorf("SHA256SUMS: %s does not match", name)
		}
	}

	p := hostPlatform(t)
	certs, err := os.ReadFile(hostCerts)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(a, fmt.Sprintf("vaultsink-%s-linux-%s", testVersion, p.Arch))
	other, _, err := buildIndex(imageInput{Version: testVersion + "-other", Certs: certs, Binaries: map[platform]string{p: bin}})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := other.Digest(); err != nil || d == da {
		t.Errorf("another version label gives digest %s (%v), want one other than %s", d, err, da)
	}
}

// TestSBOM checks the SPDX document against `go version -m`, which reads the
// same build info through the go command.
func TestSBOM(t *testing.T) {
	dir := sharedDist(t)
	p := hostPlatform(t)
	bin := filepath.Join(dir, fmt.Sprintf("vaultsink-%s-linux-%s", testVersion, p.Arch))
	raw, err := os.ReadFile(bin + ".spdx.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc spdxDocument
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.SPDXID != "SPDXRef-DOCUMENT" ||
		!strings.HasPrefix(doc.DocumentNamespace, "https://") || len(doc.CreationInfo.Creators) == 0 {
		t.Errorf("document header: %+v", doc)
	}
	if _, err := time.Parse(time.RFC3339, doc.CreationInfo.Created); err != nil || !strings.HasSuffix(doc.CreationInfo.Created, "Z") {
		t.Errorf("created %q: want RFC 3339 UTC (%v)", doc.CreationInfo.Created, err)
	}
	idPattern := regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)
	ids := map[string]spdxPackage{}
	for _, pkg := range doc.Packages {
		if !idPattern.MatchString(pkg.SPDXID) {
			t.Errorf("SPDXID %q is not SPDXRef-[A-Za-z0-9.-]+", pkg.SPDXID)
		}
		if _, dup := ids[pkg.SPDXID]; dup {
			t.Errorf("SPDXID %s used twice", pkg.SPDXID)
		}
		if pkg.Name == "" || pkg.DownloadLocation == "" || pkg.FilesAnalyzed {
			t.Errorf("package %s: name, downloadLocation required; filesAnalyzed must be false without files", pkg.SPDXID)
		}
		ids[pkg.SPDXID] = pkg
	}
	dependsOn := map[string]bool{}
	for _, r := range doc.Relationships {
		if _, ok := ids[r.RelatedSPDXElement]; !ok {
			t.Errorf("relationship %+v: no such package", r)
		}
		if r.SPDXElementID == "SPDXRef-Package-vaultsink" && r.RelationshipType == "DEPENDS_ON" {
			dependsOn[r.RelatedSPDXElement] = true
		}
	}

	main := ids["SPDXRef-Package-vaultsink"]
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if len(main.Checksums) != 1 || main.Checksums[0].Algorithm != "SHA256" || main.Checksums[0].ChecksumValue != hex.EncodeToString(sum[:]) {
		t.Errorf("vaultsink package checksums %+v, want the binary's SHA256", main.Checksums)
	}
	if main.VersionInfo != testVersion || main.LicenseDeclared != "Apache-2.0" || !slices.Equal(doc.DocumentDescribes, []string{main.SPDXID}) {
		t.Errorf("vaultsink package %+v, document describes %v", main, doc.DocumentDescribes)
	}

	// `go version -m`: "\tdep\tPATH\tVERSION\tSUM", a "\t=>\t..." line after
	// a replaced one, "\tbuild\t..." lines.
	out, err := exec.Command("go", "version", "-m", bin).Output()
	if err != nil {
		t.Fatalf("go version -m: %v", err)
	}
	want := map[string]string{}
	goVersion := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	last := ""
	for sc.Scan() {
		f := strings.Split(strings.TrimPrefix(sc.Text(), "\t"), "\t")
		switch {
		case len(f) == 1 && strings.HasPrefix(f[0], bin+": "):
			goVersion = strings.TrimPrefix(f[0], bin+": ")
		case f[0] == "dep" && len(f) >= 3:
			want[f[1]], last = f[2], f[1]
		case f[0] == "=>" && len(f) >= 3:
			delete(want, last)
			want[f[1]] = f[2]
		}
	}
	if len(want) < 20 {
		t.Fatalf("go version -m listed %d modules; parse error?\n%s", len(want), out)
	}
	got := map[string]string{}
	for id, pkg := range ids {
		if !strings.HasPrefix(id, "SPDXRef-Package-go-") || id == "SPDXRef-Package-go-stdlib" {
			continue
		}
		got[pkg.Name] = pkg.VersionInfo
		if !dependsOn[id] {
			t.Errorf("%s: no DEPENDS_ON from vaultsink", id)
		}
		if r := pkg.ExternalRefs; len(r) != 1 || r[0].ReferenceLocator != purl(pkg.Name, pkg.VersionInfo) {
			t.Errorf("%s: externalRefs %+v, want its purl", id, r)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("SBOM modules differ from go version -m:\n got %v\nwant %v", got, want)
	}
	if std := ids["SPDXRef-Package-go-stdlib"]; std.VersionInfo != goVersion || !dependsOn[std.SPDXID] {
		t.Errorf("stdlib package %+v, want version %s", std, goVersion)
	}
}

// TestPush pushes the layout to go-containerregistry's registry (the OCI
// distribution protocol, in memory, on 127.0.0.1) with the default keychain
// and pulls it back. Pushing to ghcr.io with real credentials cannot be
// tested here.
func TestPush(t *testing.T) {
	dir := sharedDist(t)
	p := hostPlatform(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no credentials: anonymous
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	for _, bad := range []string{"", host + "/vaultsink/vaultsink", "vaultsink:v1", host + "/vaultsink/vaultsink@sha256:" + strings.Repeat("0", 64)} {
		if _, err := push(ctx, filepath.Join(dir, "oci"), bad); err == nil {
			t.Errorf("push to %q: want an error (REGISTRY/REPO:TAG required)", bad)
		}
	}
	if _, err := push(ctx, t.TempDir(), host+"/vaultsink/vaultsink:v1"); err == nil {
		t.Error("push of an empty directory: want an error")
	}

	ref, err := push(ctx, filepath.Join(dir, "oci"), host+"/vaultsink/vaultsink:"+testVersion)
	if err != nil {
		t.Fatal(err)
	}
	want := layoutDigest(t, dir)
	if ref.DigestStr() != want.String() {
		t.Errorf("push returned %s, want digest %s", ref, want)
	}
	tag, err := name.NewTag(host + "/vaultsink/vaultsink:" + testVersion)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(tag, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest != want || desc.MediaType != types.OCIImageIndex {
		t.Errorf("registry serves %s %s for the tag, want the index %s", desc.MediaType, desc.Digest, want)
	}
	// A runtime pulls the image for its platform, layers and all.
	img, err := remote.Image(tag, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: p.Arch}))
	if err != nil {
		t.Fatal(err)
	}
	hdrs, _ := layerFiles(t, img)
	if hdrs["/vaultsink"] == nil || hdrs[certsPath] == nil {
		t.Errorf("pulled image lacks /vaultsink or %s", certsPath)
	}
}

// TestRefusesBinaries checks that a binary the image cannot run is refused:
// a dynamically linked one (the host's own ls) and one of another arch.
func TestRefusesBinaries(t *testing.T) {
	p := hostPlatform(t)
	ls, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls")
	}
	if err := checkStaticELF(ls, p); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Errorf("checkStaticELF(%s): %v, want dynamically linked", ls, err)
	}
	bin := filepath.Join(sharedDist(t), fmt.Sprintf("vaultsink-%s-linux-%s", testVersion, p.Arch))
	other := platform{OS: "linux", Arch: "arm64"}
	if p.Arch == "arm64" {
		other.Arch = "amd64"
	}
	if err := checkStaticELF(bin, other); err == nil {
		t.Errorf("checkStaticELF(%s, %s): no error for a %s binary", bin, other, p)
	}
	certs, err := os.ReadFile(hostCerts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := buildIndex(imageInput{Version: testVersion, Certs: certs, Binaries: map[platform]string{other: bin}}); err == nil {
		t.Errorf("buildIndex took a %s binary for %s", p, other)
	}
	if _, _, err := buildIndex(imageInput{Version: testVersion, Certs: []byte("not PEM"), Binaries: map[platform]string{p: bin}}); err == nil {
		t.Error("buildIndex took a CA bundle without certificates")
	}
}
