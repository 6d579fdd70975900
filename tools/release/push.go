package main

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// layoutIndex returns the one image index an OCI layout written by dist
// holds.
func layoutIndex(dir string) (v1.ImageIndex, error) {
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI layout %s: %w (run make release first)", dir, err)
	}
	im, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(im.Manifests) != 1 || im.Manifests[0].MediaType != types.OCIImageIndex {
		return nil, fmt.Errorf("OCI layout %s: want exactly one image index in index.json, found %d entries", dir, len(im.Manifests))
	}
	return top.ImageIndex(im.Manifests[0].Digest)
}

// push uploads the layout's image index (every platform's image) to image,
// which must name a tag, with the credentials `docker login` or a credential
// helper left in ~/.docker/config.json (authn.DefaultKeychain). It returns
// the reference by digest, for pinning in manifests.
func push(ctx context.Context, dir, image string) (name.Digest, error) {
	// Strict: no implied registry or "latest".
	tag, err := name.NewTag(image, name.StrictValidation)
	if err != nil {
		return name.Digest{}, fmt.Errorf("image %q: %w (want REGISTRY/REPO:TAG, e.g. ghcr.io/you/vaultsink:v0.2.0)", image, err)
	}
	idx, err := layoutIndex(dir)
	if err != nil {
		return name.Digest{}, err
	}
	if err := remote.WriteIndex(tag, idx, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		return name.Digest{}, fmt.Errorf("push %s: %w", tag, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return name.Digest{}, err
	}
	return tag.Context().Digest(d.String()), nil
}
