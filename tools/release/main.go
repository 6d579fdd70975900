// Command release builds what a vaultsink release ships, without a Docker
// engine: static binaries for each platform, an SPDX SBOM per binary, a
// multi-arch OCI image (layout directory and tarball) built with
// go-containerregistry, and SHA256SUMS. The same commit, Go release and CA
// bundle give the same bytes and digests. `make release` and
// `make image-push` run it from the repository root:
//
//	go run ./tools/release dist -out dist -version v0.2.0
//	go run ./tools/release push -layout dist/oci -image ghcr.io/you/vaultsink:v0.2.0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage:
  release dist -out DIR -version V [-platforms os/arch,...] [-certs FILE] [-certs-origin TEXT]
      build the binaries, SBOMs, OCI image and SHA256SUMS into DIR (which must not exist)
  release push -layout DIR -image REGISTRY/REPO:TAG
      push the image index of an OCI layout written by dist, with the default keychain
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "dist":
		fs := flag.NewFlagSet("dist", flag.ContinueOnError)
		o := distOptions{Root: "."}
		var platforms string
		fs.StringVar(&o.Out, "out", "dist", "output directory (must not exist)")
		fs.StringVar(&o.Version, "version", "", "version baked into the binaries and the image labels (git describe)")
		fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64,darwin/amd64,darwin/arm64", "binaries to build; the linux ones go into the image")
		fs.StringVar(&o.Certs, "certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle copied into the image")
		fs.StringVar(&o.CertsOrigin, "certs-origin", "", "where the CA bundle comes from, recorded in the image history (e.g. the Debian package version)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return fmt.Errorf("dist: unexpected arguments %q", fs.Args())
		}
		for p := range strings.SplitSeq(platforms, ",") {
			pl, err := parsePlatform(strings.TrimSpace(p))
			if err != nil {
				return err
			}
			o.Platforms = append(o.Platforms, pl)
		}
		return dist(ctx, o, stdout)
	case "push":
		fs := flag.NewFlagSet("push", flag.ContinueOnError)
		layoutDir := fs.String("layout", "dist/oci", "OCI image layout written by dist")
		image := fs.String("image", "", "where to push, with an explicit tag: REGISTRY/REPO:TAG")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return fmt.Errorf("push: unexpected arguments %q", fs.Args())
		}
		ref, err := push(ctx, *layoutDir, *image)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "pushed %s\n", ref)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q: %w", args[0], flag.ErrHelp)
	}
}
