package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

var _ sinks.Inventory = (*Sink)(nil)

// Units lists every regular file under <root>/org_id=<org>/, whatever its
// name or depth, whose range may intersect [from, to): the window its
// Parquet footer records or the one its key names intersects it, or
// neither is known (an unreadable file, a file without vaultsink's
// metadata under another name). Every footer is read (a few small reads
// per file), so a unit whose key lies far from the range but whose footer
// falls in it is still found.
func (s *Sink) Units(ctx context.Context, org string, from, to time.Time) ([]sinks.UnitInfo, error) {
	if err := checkWindow(event.Window{Org: org, Start: from, End: to}); err != nil {
		return nil, err
	}
	var out []sinks.UnitInfo
	dir := filepath.Join(s.root, "org_id="+org)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // the org has no units
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		u := sinks.UnitInfo{Key: filepath.ToSlash(rel), Hidden: sinks.HiddenKey(filepath.ToSlash(rel))}
		u.KeyWindow, _ = sinks.ParseObjectKey(u.Key)
		if f, err := readFooter(p); err != nil {
			u.Err = err
		} else {
			u.Window, u.Rows = f.Window, f.Rows
		}
		if sinks.MayIntersect(u, from, to) {
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the units of org %s under %s: %w", org, s.root, err)
	}
	return out, nil
}

func readFooter(path string) (pqread.Footer, error) {
	f, err := os.Open(path)
	if err != nil {
		return pqread.Footer{}, err
	}
	defer f.Close()
	return pqread.ReadFooter(f)
}

// UnitRows calls fn with the event id and timestamp of every row of u's
// file, two columns a batch at a time.
func (s *Sink) UnitRows(ctx context.Context, u sinks.UnitInfo, fn func(id string, ts time.Time) error) error {
	if !filepath.IsLocal(filepath.FromSlash(u.Key)) {
		return fmt.Errorf("unit %q: not a path under the sink's root", u.Key)
	}
	p := filepath.Join(s.root, filepath.FromSlash(u.Key))
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("read unit %s: %w", p, err)
	}
	defer f.Close()
	if err := pqread.IDTimes(ctx, f, fn); err != nil {
		return fmt.Errorf("read unit %s: %w", p, err)
	}
	return nil
}

// QuarantinedIn calls fn with every record of the org's quarantine files
// (*.jsonl under <quarantine root>/org_id=<org>/) whose window starts in
// [from, to). Files whose name puts their window more than a day away
// from the range are not opened; hidden (temp) files are skipped.
func (s *Sink) QuarantinedIn(ctx context.Context, org string, from, to time.Time, fn func(event.Quarantined) error) error {
	if err := checkWindow(event.Window{Org: org, Start: from, End: to}); err != nil {
		return err
	}
	dir := filepath.Join(s.qroot, "org_id="+org)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := d.Name()
		if !d.Type().IsRegular() || !strings.HasSuffix(name, ".jsonl") || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") {
			return nil
		}
		if start, ok := sinks.ParseQuarantineName(name); ok && !sinks.NearRange(start, from, to) {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := sinks.QuarantineLines(f, from, to, fn); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the quarantine of org %s under %s: %w", org, s.qroot, err)
	}
	return nil
}
