package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/source"
)

// EventIDs calls fn with every event_id in w's data file, one row group at a
// time (memory is bounded by one row group's id column). A window without a
// file has no ids.
func (s *Sink) EventIDs(ctx context.Context, w source.Window, fn func(id string) error) error {
	if err := checkWindow(w); err != nil {
		return err
	}
	rdr, err := file.OpenParquetFile(s.Path(w), false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read ids %s: %w", w, err)
	}
	defer rdr.Close()
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{BatchSize: 64 << 10}, memory.DefaultAllocator)
	if err != nil {
		return fmt.Errorf("read ids %s: %w", w, err)
	}
	for rg := 0; rg < rdr.NumRowGroups(); rg++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		tbl, err := fr.ReadRowGroups(ctx, []int{source.ColEventID}, []int{rg})
		if err != nil {
			return fmt.Errorf("read ids %s: row group %d: %w", w, rg, err)
		}
		err = eachString(tbl.Column(0).Data().Chunks(), fn)
		tbl.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func eachString(chunks []arrow.Array, fn func(string) error) error {
	for _, c := range chunks {
		col, ok := c.(*array.String)
		if !ok {
			return fmt.Errorf("event_id column is %s, want utf8", c.DataType())
		}
		for i := 0; i < col.Len(); i++ {
			if err := fn(col.Value(i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// Stat reports whether w's data file exists and how many events it holds,
// reading only the file's footer. Backfill uses it to skip written windows.
// A file whose footer names another window is an error, not a match.
func (s *Sink) Stat(ctx context.Context, w source.Window) (exists bool, events int64, err error) {
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
