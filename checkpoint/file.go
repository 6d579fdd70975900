package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/vaultsink/vaultsink/internal/fsutil"
)

func init() {
	Register("file", func() Config { return &FileConfig{} })
}

// DefaultFilePath is where the file store keeps checkpoints by default.
const DefaultFilePath = "./state"

// FileConfig is the `checkpoint:` section for `type: file`.
type FileConfig struct {
	// Path is the directory holding one <org>.json per org.
	Path string `yaml:"path"`
}

var _ Config = (*FileConfig)(nil)

// SetDefaults fills unset fields.
func (c *FileConfig) SetDefaults() {
	if c.Path == "" {
		c.Path = DefaultFilePath
	}
}

// Validate checks the section.
func (c *FileConfig) Validate() error {
	if strings.TrimSpace(c.Path) == "" {
		return fmt.Errorf("path: must not be blank")
	}
	return nil
}

// Build opens the store, creating its directory.
func (c *FileConfig) Build(ctx context.Context, log *slog.Logger) (Store, error) {
	path := c.Path
	if path == "" {
		path = DefaultFilePath
	}
	return OpenFileStore(path, log)
}

// FileStore keeps one JSON document per org at <dir>/<org>.json, mode 0600,
// replaced atomically (temp file, fsync, rename, directory fsync). Version is
// the hex SHA-256 of the file's bytes, so a Put detects any change made since
// the Get, by this process or another: Puts hold a mutex and an flock on
// <dir>/.lock while they compare and rename. flock makes it Unix-only.
// A Put writes .<org>.json.tmp first, so its cost does not depend on how
// many orgs share the directory.
type FileStore struct {
	dir string
	log *slog.Logger
	mu  sync.Mutex
}

var _ Store = (*FileStore)(nil)

// OpenFileStore opens (creating, mode 0700) the store in dir.
func OpenFileStore(dir string, log *slog.Logger) (*FileStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("create checkpoint directory: %w", err)
	}
	s := &FileStore{dir: abs, log: log}
	s.removeLegacyTemps()
	return s, nil
}

// Dir is the store's directory.
func (s *FileStore) Dir() string { return s.dir }

func (s *FileStore) path(org string) string { return filepath.Join(s.dir, org+".json") }

func fileCheckOrg(org string) error {
	if org == "" || org == "." || org == ".." || strings.HasPrefix(org, ".") || strings.ContainsAny(org, `/\`+"\x00") {
		return fmt.Errorf("org %q is not usable as a checkpoint file name", org)
	}
	return nil
}

// Get reads the org's checkpoint. A file that exists but cannot be read or
// parsed is an error naming the file and the way to repair it.
func (s *FileStore) Get(ctx context.Context, org string) (Checkpoint, error) {
	if err := fileCheckOrg(org); err != nil {
		return Checkpoint{}, fmt.Errorf("get checkpoint: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Checkpoint{}, err
	}
	p := s.path(org)
	data, size, err := readLimited(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Checkpoint{}, ErrNotFound
	}
	if err != nil {
		return Checkpoint{}, fileCorrupt(org, p, err)
	}
	if size > MaxDocBytes {
		return Checkpoint{}, fileCorrupt(org, p, fmt.Errorf("%d bytes, over the limit of %d bytes of a checkpoint; "+
			"shorten its largest member (last_error, say) with an editor", size, MaxDocBytes))
	}
	var cp Checkpoint
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cp); err != nil {
		return Checkpoint{}, fileCorrupt(org, p, fmt.Errorf("parse: %w", err))
	}
	if dec.More() {
		return Checkpoint{}, fileCorrupt(org, p, errors.New("parse: trailing data after the JSON document"))
	}
	if cp.Org != org {
		return Checkpoint{}, fileCorrupt(org, p, fmt.Errorf("file holds org_id %q", cp.Org))
	}
	cp.Version = fileVersion(data)
	return cp, nil
}

func fileCorrupt(org, path string, err error) error {
	return fmt.Errorf("checkpoint of org %s at %s is unreadable (%w); fix or restore the file, or run `%s` to restart the org from its configured start",
		org, path, err, resetCommand(org))
}

// readLimited reads the file at p, at most MaxDocBytes+1 of it: a larger
// file comes back cut, with its full size, so that the caller can refuse
// it without having held it in memory.
func readLimited(p string) (data []byte, size int64, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, MaxDocBytes+1))
	if err != nil {
		return nil, 0, err
	}
	size = int64(len(data))
	if size > MaxDocBytes {
		if st, err := f.Stat(); err == nil && st.Size() > size {
			size = st.Size()
		}
	}
	return data, size, nil
}

func fileVersion(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Put replaces the org's checkpoint if cp.Version matches the file's current
// version ("" when there is none), else returns ErrConflict.
func (s *FileStore) Put(ctx context.Context, cp Checkpoint) (string, error) {
	if err := fileCheckOrg(cp.Org); err != nil {
		return "", fmt.Errorf("put checkpoint: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	data, err := encode(cp)
	if err != nil {
		return "", fmt.Errorf("put checkpoint %s: %w", cp.Org, err)
	}

	unlock, err := s.lock()
	if err != nil {
		return "", fmt.Errorf("put checkpoint %s: %w", cp.Org, err)
	}
	defer unlock()

	p := s.path(cp.Org)
	cur, size, err := readLimited(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if cp.Version != "" {
			return "", fmt.Errorf("put checkpoint %s: %s was removed since it was read: %w", cp.Org, p, ErrConflict)
		}
	case err != nil:
		return "", fmt.Errorf("put checkpoint %s: read %s: %w", cp.Org, p, err)
	default:
		// A file over the limit was never handed out by Get, so no
		// version can match it.
		if size > MaxDocBytes || cp.Version != fileVersion(cur) {
			return "", fmt.Errorf("put checkpoint %s: %s changed since it was read: %w", cp.Org, p, ErrConflict)
		}
	}
	if err := fileWriteAtomic(s.dir, p, data); err != nil {
		return "", fmt.Errorf("put checkpoint %s: %w", cp.Org, err)
	}
	return fileVersion(data), nil
}

// Delete removes the org's checkpoint; deleting a missing one is not an error.
func (s *FileStore) Delete(ctx context.Context, org string) error {
	if err := fileCheckOrg(org); err != nil {
		return fmt.Errorf("delete checkpoint: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return fmt.Errorf("delete checkpoint %s: %w", org, err)
	}
	defer unlock()
	if err := os.Remove(s.path(org)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete checkpoint %s: %w", org, err)
	}
	if err := fsutil.SyncDir(s.dir); err != nil {
		return fmt.Errorf("delete checkpoint %s: %w", org, err)
	}
	return nil
}

// List returns the orgs with a checkpoint file, sorted.
func (s *FileStore) List(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	orgs := []string{}
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		orgs = append(orgs, strings.TrimSuffix(name, ".json"))
	}
	sort.Strings(orgs)
	return orgs, nil
}

// Close releases nothing: every operation opens and closes its own files.
func (s *FileStore) Close() error { return nil }

// tempPath is the temp file a Put of the checkpoint at path writes first:
// .<org>.json.tmp, hidden from List.
func tempPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
}

// removeLegacyTemps removes the temp files of crashed writers of earlier
// versions, which named them .<org>.json.tmp-<random>: once per open,
// under the lock, so a writer of such a version that is between create
// and rename keeps its file. Best effort: a store opened read-only
// (checkpoint list) leaves them.
func (s *FileStore) removeLegacyTemps() {
	stale, _ := filepath.Glob(filepath.Join(s.dir, ".*.json.tmp-*"))
	if len(stale) == 0 {
		return
	}
	unlock, err := s.lock()
	if err != nil {
		return
	}
	defer unlock()
	stale, _ = filepath.Glob(filepath.Join(s.dir, ".*.json.tmp-*"))
	for _, p := range stale {
		if err := os.Remove(p); err == nil {
			s.log.Info("removed the temp file of an interrupted checkpoint write", "path", p)
		}
	}
}

// lock takes the store mutex (goroutines of this process) and an exclusive
// flock on <dir>/.lock (other processes sharing the directory).
func (s *FileStore) lock() (func(), error) {
	s.mu.Lock()
	unlock, err := fsutil.Lock(filepath.Join(s.dir, ".lock"))
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return func() {
		unlock()
		s.mu.Unlock()
	}, nil
}

// fileWriteAtomic replaces path with data: temp file in the same directory,
// fsync, rename, directory fsync. Mode 0600: checkpoints carry lease owners
// and error messages.
//
// The caller holds the store's lock (a flock shared by every process), so
// no other writer is between create and rename: the temp file has a fixed
// name per org, and one that exists now was left by a writer that died
// there. It is removed and created anew (O_EXCL: never through a link left
// in its place). Looking for it costs one call whatever the number of orgs
// in the directory.
func fileWriteAtomic(dir, path string, data []byte) (err error) {
	tmp := tempPath(path)
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale temp file: %w", err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("chmod temp file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write temp file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temp file: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return fsutil.SyncDir(dir)
}
