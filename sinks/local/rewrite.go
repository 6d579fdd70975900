package local

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vaultsink/vaultsink/internal/fsutil"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

var _ sinks.Rewriter = (*Sink)(nil)

// A rewrite stages units under the root, in a directory Hive readers skip
// (its name starts with "_"), with a suffix that globs such as
// out/**/*.parquet do not match either.
const (
	stagingDir    = "_rewindow"
	stagingSuffix = ".staged"
)

func (s *Sink) stagedKey(w event.Window) string {
	return stagingDir + "/" + sinks.ObjectKey(w) + stagingSuffix
}

// path is the file of a unit key (relative to the root), refusing keys
// that would leave it.
func (s *Sink) path(key string) (string, error) {
	p := filepath.FromSlash(key)
	if !filepath.IsLocal(p) {
		return "", fmt.Errorf("unit key %q leaves the sink's root", key)
	}
	return filepath.Join(s.root, p), nil
}

// Rows calls fn with every row batch of u's file.
func (s *Sink) Rows(ctx context.Context, u sinks.UnitInfo, fn func(arrow.RecordBatch) error) error {
	p, err := s.path(u.Key)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return pqread.Rows(ctx, f, fn)
}

// Staged lists the units of org under the staging directory.
func (s *Sink) Staged(ctx context.Context, org string) ([]sinks.UnitInfo, error) {
	dir := filepath.Join(s.root, stagingDir, "org_id="+org)
	var out []sinks.UnitInfo
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, stagingSuffix) {
			return nil // a temp file of a staging that did not finish
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		u := sinks.UnitInfo{Key: filepath.ToSlash(rel), Hidden: true, Staged: true}
		u.KeyWindow, _ = sinks.ParseObjectKey(strings.TrimSuffix(u.Key, stagingSuffix))
		if f, err := readFooter(p); err != nil {
			u.Err = err
		} else {
			u.Window, u.Rows = f.Window, f.Rows
		}
		out = append(out, u)
		return ctx.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list the staged units of org %s: %w", org, err)
	}
	return out, nil
}

// Stage writes w's unit into the staging directory (temp file, fsync,
// rename): an earlier staged unit of w is replaced only once the new one
// is complete.
func (s *Sink) Stage(ctx context.Context, w event.Window, fill func(write func(arrow.RecordBatch) error) error) (int64, error) {
	if err := checkWindow(w); err != nil {
		return 0, err
	}
	final, err := s.path(s.stagedKey(w))
	if err != nil {
		return 0, err
	}
	if err := removeTemps(final); err != nil {
		return 0, err
	}
	f, err := s.createTemp(final, s.fileMode)
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	buf := bufio.NewWriterSize(f, 1<<20)
	pw, err := pqenc.NewWriter(buf, pqenc.Meta{Window: w, Version: s.version}, s.opts)
	if err != nil {
		return 0, err
	}
	if err := fill(pw.Write); err != nil {
		pw.Abort()
		return 0, err
	}
	if err := pw.Close(); err != nil {
		return 0, err
	}
	if err := buf.Flush(); err != nil {
		return 0, err
	}
	if err := publish(f, final); err != nil {
		return 0, err
	}
	ok = true
	return pw.Rows(), nil
}

// Publish renames w's staged unit onto w's key.
func (s *Sink) Publish(ctx context.Context, w event.Window) error {
	staged, err := s.path(s.stagedKey(w))
	if err != nil {
		return err
	}
	final := s.Path(w)
	if err := s.mkdirAll(filepath.Dir(final)); err != nil {
		return err
	}
	if err := os.Rename(staged, final); err != nil {
		return err
	}
	if err := fsutil.SyncDir(filepath.Dir(final)); err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(staged))
}

// Remove deletes u's file.
func (s *Sink) Remove(ctx context.Context, u sinks.UnitInfo) error {
	p, err := s.path(u.Key)
	if err != nil {
		return err
	}
	return removeDurably(p)
}
