package bigquery

import (
	"context"
	"fmt"
	"os"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

// Several units' Parquet files merged into the one file a load job takes,
// row group by row group (bounded memory).

// mergedData returns one Parquet file holding every unit's rows: the unit's
// own file when there is one unit, else a file re-encoded row group by row
// group (bounded memory) from the units' files.
func (s *Sink) mergedData(us []*unit) (string, func(), error) {
	if len(us) == 1 {
		return us[0].f.Name(), func() {}, nil
	}
	out, err := os.CreateTemp(s.cfg.TempDir, "vaultsink-bq-batch-*.parquet")
	if err != nil {
		return "", nil, fmt.Errorf("create batch parquet: %w", err)
	}
	cleanup := func() { out.Close(); os.Remove(out.Name()) }
	meta := pqenc.Meta{Window: event.Window{Start: us[0].w.Start, End: us[0].w.End}, Version: s.version}
	for _, u := range us {
		if u.w.Start.Before(meta.Window.Start) {
			meta.Window.Start = u.w.Start
		}
		if u.w.End.After(meta.Window.End) {
			meta.Window.End = u.w.End
		}
	}
	pw, err := pqenc.NewWriter(out, meta, s.cfg.Options)
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("batch parquet writer: %w", err)
	}
	for _, u := range us {
		if err := copyParquet(u.f.Name(), event.Schema, pw.Write); err != nil {
			pw.Close()
			cleanup()
			return "", nil, fmt.Errorf("merge parquet of %s: %w", u.w, err)
		}
	}
	if err := pw.Close(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("finish batch parquet: %w", err)
	}
	if err := out.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return out.Name(), cleanup, nil
}

// copyParquet streams the row batches of the Parquet file at path,
// relabelled with schema, into write, a batch at a time.
func copyParquet(path string, schema *arrow.Schema, write func(arrow.RecordBatch) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pqread.Copy(context.Background(), f, schema, write)
}

func (s *Sink) mergedQuarantine(us []*unit) (string, func(), error) {
	if len(us) == 1 {
		return us[0].qf.Name(), func() {}, nil
	}
	out, err := os.CreateTemp(s.cfg.TempDir, "vaultsink-bq-qbatch-*.parquet")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { out.Close(); os.Remove(out.Name()) }
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
	qw, err := pqarrow.NewFileWriter(quarantineArrow, out, props, pqarrow.NewArrowWriterProperties(pqarrow.WithCoerceTimestamps(arrow.Microsecond)))
	if err != nil {
		cleanup()
		return "", nil, err
	}
	for _, u := range us {
		write := func(rec arrow.RecordBatch) error { return writeQuarantine(qw, rec) }
		if err := copyParquet(u.qf.Name(), quarantineArrow, write); err != nil {
			qw.Close()
			cleanup()
			return "", nil, fmt.Errorf("merge quarantine of %s: %w", u.w, err)
		}
	}
	if err := qw.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return out.Name(), cleanup, nil
}
