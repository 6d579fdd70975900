package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

// EventIDs calls fn with every event_id in w's data file, a column page at
// a time (memory does not grow with the file). A window without a file has
// no ids.
func (s *Sink) EventIDs(ctx context.Context, w event.Window, fn func(id string) error) error {
	if err := checkWindow(w); err != nil {
		return err
	}
	f, err := os.Open(s.Path(w))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read ids %s: %w", w, err)
	}
	defer f.Close()
	if err := pqread.IDs(ctx, f, fn); err != nil {
		return fmt.Errorf("read ids %s: %s: %w", w, f.Name(), err)
	}
	return nil
}

// Stat reports whether w's data file exists and how many events it holds,
// reading only the file's footer. Backfill uses it to skip written windows.
// A file whose footer names another window is an error, not a match.
func (s *Sink) Stat(ctx context.Context, w event.Window) (exists bool, events int64, err error) {
	if err := checkWindow(w); err != nil {
		return false, 0, err
	}
	if err := ctx.Err(); err != nil {
		return false, 0, err
	}
	path := s.Path(w)
	rdr, err := file.OpenParquetFile(path, false)
	if errors.Is(err, fs.ErrNotExist) {
		return false, 0, nil
	}
	if err != nil {
		return false, 0, fmt.Errorf("stat %s: %s: %w", w, path, err)
	}
	defer rdr.Close()
	kv := rdr.MetaData().KeyValueMetadata()
	if org := kv.FindValue(pqenc.MetaOrg); org == nil || *org != w.Org {
		return false, 0, fmt.Errorf("stat %s: %s: footer names org %v, not %s", w, path, deref(org), w.Org)
	}
	if c := kv.FindValue(pqenc.MetaEventCount); c != nil {
		if n, err := strconv.ParseInt(*c, 10, 64); err != nil || n != rdr.NumRows() {
			return false, 0, fmt.Errorf("stat %s: %s: event_count %q disagrees with %d rows", w, path, *c, rdr.NumRows())
		}
	}
	return true, rdr.NumRows(), nil
}

func deref(p *string) string {
	if p == nil {
		return "<none>"
	}
	return strconv.Quote(*p)
}
