package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

type distOptions struct {
	Root        string // the module root, where ./cmd/vaultsink is
	Out         string
	Version     string
	Platforms   []platform
	Certs       string
	CertsOrigin string
}

// layoutDirName is the OCI layout's directory in the output; `make
// image-push` reads it.
const layoutDirName = "oci"

// dist builds a release into o.Out: vaultsink-<version>-<os>-<arch> and its
// .spdx.json per platform, the image of the linux platforms as an OCI layout
// (oci/) and an OCI archive (vaultsink-<version>-oci.tar), and SHA256SUMS
// over the files.
func dist(ctx context.Context, o distOptions, stdout io.Writer) error {
	if _, err := os.Stat(o.Out); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("output directory %s exists: remove it first (make release does)", o.Out)
	}
	if len(o.Platforms) == 0 {
		return fmt.Errorf("no platforms")
	}
	certs, err := os.ReadFile(o.Certs)
	if err != nil {
		return fmt.Errorf("CA bundle: %w (Debian: apt-get install ca-certificates)", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return err
	}

	in := imageInput{Version: o.Version, Certs: certs, CertsOrigin: o.CertsOrigin, Binaries: map[platform]string{}}
	var sums []string
	for _, p := range o.Platforms {
		name := fmt.Sprintf("vaultsink-%s-%s-%s", o.Version, p.OS, p.Arch)
		bin := filepath.Join(o.Out, name)
		fmt.Fprintf(stdout, "build %s\n", bin)
		if err := buildBinary(ctx, o.Root, p, o.Version, bin); err != nil {
			return err
		}
		if err := writeSBOM(bin, o.Version, bin+".spdx.json"); err != nil {
			return fmt.Errorf("SBOM of %s: %w", bin, err)
		}
		sums = append(sums, name, name+".spdx.json")
		if p.OS == "linux" {
			in.Binaries[p] = bin
		}
	}

	if len(in.Binaries) > 0 {
		idx, meta, err := buildIndex(in)
		if err != nil {
			return fmt.Errorf("image: %w", err)
		}
		dir := filepath.Join(o.Out, layoutDirName)
		if err := writeLayout(dir, idx, o.Version); err != nil {
			return err
		}
		archive := fmt.Sprintf("vaultsink-%s-oci.tar", o.Version)
		if err := writeLayoutTar(dir, filepath.Join(o.Out, archive), meta.Created); err != nil {
			return fmt.Errorf("OCI archive: %w", err)
		}
		sums = append(sums, archive)
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "image index %s (%s, commit %s) in %s and %s\n", d, o.Version, meta.Revision, dir, filepath.Join(o.Out, archive))
	}

	slices.Sort(sums)
	if err := writeSums(o.Out, sums); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "checksums in %s\n", filepath.Join(o.Out, "SHA256SUMS"))
	return nil
}

// writeSums writes dir/SHA256SUMS in the format `sha256sum -c` checks.
func writeSums(dir string, names []string) error {
	var b strings.Builder
	for _, name := range names {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("checksum %s: %w", name, err)
		}
		fmt.Fprintf(&b, "%s  %s\n", hex.EncodeToString(h.Sum(nil)), name)
	}
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(b.String()), 0o644)
}
