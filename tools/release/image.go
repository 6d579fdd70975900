package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed contents. The user is distroless's nonroot (65532), so
// the manifests' runAsUser and fsGroup and the Dockerfile's image agree.
const (
	binaryPath = "/vaultsink"
	certsPath  = "/etc/ssl/certs/ca-certificates.crt"
	nonrootID  = 65532
	passwd     = "root:x:0:0:root:/root:/sbin/nologin\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n" +
		"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group = "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"
)

// imageConfig is the runtime config of every platform's image: the
// Dockerfile's ENTRYPOINT/CMD/USER/EXPOSE, with the binary at the root.
// PATH=/ lets `kubectl exec ... -- vaultsink version` find it. Nothing
// secret belongs in Env: a config's labels and env are public.
func imageConfig(labels map[string]string) v1.Config {
	return v1.Config{
		User:         fmt.Sprintf("%d:%d", nonrootID, nonrootID),
		Entrypoint:   []string{binaryPath},
		Cmd:          []string{"run", "--config", "/etc/vaultsink/config.yaml"},
		WorkingDir:   "/home/nonroot",
		Env:          []string{"PATH=/", "SSL_CERT_FILE=" + certsPath},
		ExposedPorts: map[string]struct{}{"9464/tcp": {}},
		Labels:       labels,
	}
}

// imageInput is everything an image index is built from. Two calls with
// equal inputs give byte-identical blobs and so the same digests: every
// time in the image is meta.Time (the commit time), tar entries are in a
// fixed order with fixed owners, and gzip writes no name or time.
type imageInput struct {
	Version     string
	Certs       []byte
	CertsOrigin string              // recorded in the history, e.g. "Debian ca-certificates 20230311"
	Binaries    map[platform]string // linux platform -> static binary
}

// imageMeta is what the labels say; it comes from the binaries' build info.
type imageMeta struct {
	Version, Revision, Source string
	Created                   time.Time
	Modified                  bool
}

func (m imageMeta) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "vaultsink",
		"org.opencontainers.image.description": "Mirrors VaultTerm's audit event stream into Parquet (local, S3) or BigQuery, exactly once",
		"org.opencontainers.image.version":     m.Version,
		"org.opencontainers.image.revision":    m.Revision,
		"org.opencontainers.image.source":      m.Source,
		"org.opencontainers.image.licenses":    "Apache-2.0",
		"org.opencontainers.image.created":     m.Created.UTC().Format(time.RFC3339),
	}
}

// buildIndex builds the multi-arch image index: per platform, a base layer
// (CA bundle, passwd, group, home, tmp; the same blob for every platform)
// and a layer holding the binary.
func buildIndex(in imageInput) (v1.ImageIndex, imageMeta, error) {
	if len(in.Binaries) == 0 {
		return nil, imageMeta{}, fmt.Errorf("no linux binaries to put in the image")
	}
	if len(in.Certs) == 0 || !bytes.Contains(in.Certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, imageMeta{}, fmt.Errorf("the CA bundle is empty or holds no PEM certificate")
	}
	plats := make([]platform, 0, len(in.Binaries))
	for p := range in.Binaries {
		plats = append(plats, p)
	}
	slices.SortFunc(plats, func(a, b platform) int { return strings.Compare(a.String(), b.String()) })

	// The labels come from the binaries themselves, which must agree.
	var meta imageMeta
	for i, p := range plats {
		if p.OS != "linux" {
			return nil, meta, fmt.Errorf("image platform %s: only linux binaries run in the image", p)
		}
		if err := checkStaticELF(in.Binaries[p], p); err != nil {
			return nil, meta, err
		}
		bm, _, err := readBuildMeta(in.Binaries[p])
		if err != nil {
			return nil, meta, err
		}
		m := imageMeta{Version: in.Version, Revision: bm.Revision, Source: "https://" + bm.Module, Created: bm.Time.UTC(), Modified: bm.Modified}
		if i > 0 && m != meta {
			return nil, meta, fmt.Errorf("%s and %s were built from different sources (%+v, %+v)", in.Binaries[plats[0]], in.Binaries[p], meta, m)
		}
		meta = m
	}

	base, err := gzipLayer(meta.Created, []tarEntry{
		{Name: "etc/", Mode: 0o755},
		{Name: "etc/group", Mode: 0o644, Body: []byte(group)},
		{Name: "etc/passwd", Mode: 0o644, Body: []byte(passwd)},
		{Name: "etc/ssl/", Mode: 0o755},
		{Name: "etc/ssl/certs/", Mode: 0o755},
		{Name: strings.TrimPrefix(certsPath, "/"), Mode: 0o644, Body: in.Certs},
		{Name: "home/", Mode: 0o755},
		{Name: "home/nonroot/", Mode: 0o700, Owner: nonrootID},
		{Name: "tmp/", Mode: 0o1777},
	})
	if err != nil {
		return nil, meta, fmt.Errorf("base layer: %w", err)
	}
	baseBy := "vaultsink release: /etc/passwd and /etc/group (nonroot 65532), " + certsPath
	if in.CertsOrigin != "" {
		baseBy += " from " + in.CertsOrigin
	}

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range plats {
		bin, err := os.ReadFile(in.Binaries[p])
		if err != nil {
			return nil, meta, err
		}
		app, err := gzipLayer(meta.Created, []tarEntry{{Name: strings.TrimPrefix(binaryPath, "/"), Mode: 0o755, Body: bin}})
		if err != nil {
			return nil, meta, fmt.Errorf("binary layer %s: %w", p, err)
		}
		img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
		img, err = mutate.Append(img,
			mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: meta.Created}, CreatedBy: baseBy}},
			mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: v1.Time{Time: meta.Created}, CreatedBy: "vaultsink release: " + binaryPath + " " + meta.Version + " (" + p.String() + ")"}},
		)
		if err != nil {
			return nil, meta, err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, meta, err
		}
		cf = cf.DeepCopy()
		cf.Created = v1.Time{Time: meta.Created}
		cf.OS, cf.Architecture = p.OS, p.Arch
		cf.Config = imageConfig(meta.labels())
		vp := v1.Platform{OS: p.OS, Architecture: p.Arch}
		if p.Arch == "arm64" {
			vp.Variant, cf.Variant = "v8", "v8"
		}
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return nil, meta, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: &vp}})
	}
	// Registries (GHCR among them) show a multi-arch package's source,
	// description and license from the index's annotations.
	idx = mutate.Annotations(idx, meta.labels()).(v1.ImageIndex)
	return idx, meta, nil
}

// plainImage is an image whose index entry has no artifactType:
// go-containerregistry would put the config's media type there, a field
// OCI meant for artifacts, not for a plain image's index entry.
type plainImage struct{ v1.Image }

func (plainImage) ArtifactType() (string, error) { return "", nil }

// tarEntry is one file or directory (Name ends in /) of a layer, owned by
// root unless Owner says otherwise.
type tarEntry struct {
	Name  string
	Mode  int64
	Owner int
	Body  []byte
}

// gzipLayer writes entries, in the order given, as a gzipped tar layer
// with every time set to mtime. Go's gzip writes no name and a zero time in
// its header, so the bytes depend only on the entries and the Go release.
// The default level: the best one takes seven times as long for a 3%
// smaller binary layer.
func gzipLayer(mtime time.Time, entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
	if err != nil {
		return nil, err
	}
	diffID := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diffID))
	for _, e := range entries {
		h := &tar.Header{Name: e.Name, Mode: e.Mode, Uid: e.Owner, Gid: e.Owner, ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatPAX}
		if strings.HasSuffix(e.Name, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.Body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
		if _, err := tw.Write(e.Body); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	digest := sha256.Sum256(buf.Bytes())
	return &gzLayer{
		gz:     buf.Bytes(),
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(digest[:])},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diffID.Sum(nil))},
	}, nil
}

// gzLayer is a gzipped tar layer held in memory, with the digests taken
// while it was written: go-containerregistry's tarball layers would
// decompress it again to learn its diff id.
type gzLayer struct {
	gz             []byte
	digest, diffID v1.Hash
}

func (l *gzLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *gzLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *gzLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *gzLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *gzLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *gzLayer) Uncompressed() (io.ReadCloser, error) { return gzip.NewReader(bytes.NewReader(l.gz)) }

// writeLayout writes idx as an OCI image layout in dir, its index.json
// naming it ref (`oci:dir:ref` for skopeo, crane and podman).
func writeLayout(dir string, idx v1.ImageIndex, ref string) error {
	top := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        idx,
		Descriptor: v1.Descriptor{Annotations: map[string]string{"org.opencontainers.image.ref.name": ref}},
	})
	if _, err := layout.Write(dir, top); err != nil {
		return fmt.Errorf("write OCI layout %s: %w", dir, err)
	}
	return nil
}

// writeLayoutTar packs the layout dir into a tar (an OCI archive, as
// `skopeo copy oci-archive:` and `podman load` read it): entries sorted by
// name, every time mtime, root-owned, so equal layouts give equal tars.
func writeLayoutTar(dir, out string, mtime time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		} else if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, name := range names {
		h := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, ModTime: mtime.UTC().Truncate(time.Second), Format: tar.FormatPAX}
		if strings.HasSuffix(name, "/") {
			h.Mode, h.Typeflag = 0o755, tar.TypeDir
		}
		err = func() error {
			if h.Typeflag == tar.TypeDir {
				return tw.WriteHeader(h)
			}
			src, err := os.Open(filepath.Join(dir, filepath.FromSlash(name)))
			if err != nil {
				return err
			}
			defer src.Close()
			st, err := src.Stat()
			if err != nil {
				return err
			}
			h.Size = st.Size()
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			_, err = io.Copy(tw, src)
			return err
		}()
		if err != nil {
			f.Close()
			return fmt.Errorf("pack %s: %w", name, err)
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
