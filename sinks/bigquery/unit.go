package bigquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
)

// A unit: one window's rows and quarantine, encoded to local Parquet files
// as they come, committed by the group commit (group.go).

type unit struct {
	s *Sink
	w event.Window

	f      *os.File
	pw     *pqenc.Writer
	digest *contentDigest // of the rows, without ingested_at
	rows   int64
	size   int64
	sum    string

	qf      *os.File
	qw      *pqarrow.FileWriter
	qdigest *contentDigest
	qrows   int64
	qsum    string
	qbuf    []event.Quarantined
	qbytes  int // raw bytes in qbuf

	fence *sinks.Fence // nil: no fence check (SetFence never called)

	stats          unitStats // set by the group commit
	finished, done bool
}

// SetFence makes the commit check the writer's lease: it fails with
// sinks.ErrFenced when the fence table holds a newer epoch for the org, and
// records f otherwise, in the same transaction as the rows. An equal epoch
// passes: a lease's epochs start again at 1 when its checkpoint is lost.
func (u *unit) SetFence(f sinks.Fence) { u.fence = &f }

func (u *unit) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if u.done || u.finished {
		return errors.New("bigquery unit: write after commit or abort")
	}
	if rec.NumRows() == 0 {
		return nil
	}
	if u.pw == nil {
		f, err := os.CreateTemp(u.s.cfg.TempDir, "vaultsink-bq-*.parquet")
		if err != nil {
			return fmt.Errorf("create temp parquet for %s: %w", u.w, err)
		}
		u.f, u.digest = f, newContentDigest()
		// The writers must not close the file: finish does, after them.
		pw, err := pqenc.NewWriter(struct{ io.Writer }{f}, pqenc.Meta{Window: u.w, Version: u.s.version}, u.s.cfg.Options)
		if err != nil {
			u.cleanup()
			return fmt.Errorf("parquet writer for %s: %w", u.w, err)
		}
		u.pw = pw
	}
	if err := u.pw.Write(rec); err != nil {
		return fmt.Errorf("encode batch of %s: %w", u.w, err)
	}
	u.digest.addRecord(rec)
	u.rows += rec.NumRows()
	return nil
}

func (u *unit) Quarantine(ctx context.Context, q event.Quarantined) error {
	if u.done || u.finished {
		return errors.New("bigquery unit: quarantine after commit or abort")
	}
	u.qbuf = append(u.qbuf, q)
	if u.qdigest == nil {
		u.qdigest = newContentDigest()
	}
	u.qdigest.addQuarantined(q)
	u.qrows++
	u.qbytes += len(q.Raw) + len(q.Reason)
	if len(u.qbuf) >= 1024 || u.qbytes >= quarantineFlushBytes {
		return u.flushQuarantine()
	}
	return nil
}

// Bounds of what a unit keeps in memory of its quarantine: records are
// encoded once quarantineFlushBytes of them wait, and a row group is cut
// once quarantineRowGroupBytes of it are encoded (a buffered row group is
// held whole until it is cut).
const (
	quarantineFlushBytes    = 4 << 20
	quarantineRowGroupBytes = 8 << 20
)

// writeQuarantine adds rec to the quarantine file of qw, cutting the row
// group when it grew to quarantineRowGroupBytes.
func writeQuarantine(qw *pqarrow.FileWriter, rec arrow.RecordBatch) error {
	if err := qw.WriteBuffered(rec); err != nil {
		return err
	}
	if qw.RowGroupTotalCompressedBytes()+qw.RowGroupTotalBytesWritten() >= quarantineRowGroupBytes {
		return qw.NewBufferedRowGroupChecked()
	}
	return nil
}

// finish closes the unit's files and fixes their content hashes.
func (u *unit) finish() error {
	if u.finished {
		return nil
	}
	u.finished = true
	if u.pw != nil {
		if err := u.pw.Close(); err != nil {
			return fmt.Errorf("finish parquet of %s: %w", u.w, err)
		}
		u.size = u.pw.Bytes()
		u.sum = u.digest.String()
		if err := u.f.Close(); err != nil {
			return fmt.Errorf("close temp parquet of %s: %w", u.w, err)
		}
	}
	if u.qrows > 0 {
		if err := u.flushQuarantine(); err != nil {
			return err
		}
		if err := u.qw.Close(); err != nil {
			return fmt.Errorf("finish quarantine parquet of %s: %w", u.w, err)
		}
		u.qsum = u.qdigest.String()
		if err := u.qf.Close(); err != nil {
			return fmt.Errorf("close quarantine parquet of %s: %w", u.w, err)
		}
	}
	return nil
}

func (u *unit) Commit(ctx context.Context) (sinks.Result, error) {
	if u.done {
		return sinks.Result{}, errors.New("bigquery unit: commit after commit or abort")
	}
	res, err := u.s.commit(ctx, []*unit{u})
	if err != nil {
		return sinks.Result{}, err
	}
	return res[0], nil
}

func (u *unit) Abort(ctx context.Context) error {
	if u.done {
		return nil
	}
	u.done = true
	if u.pw != nil && !u.finished {
		u.pw.Abort()
	}
	if u.qw != nil && !u.finished {
		u.qw.Close()
	}
	u.cleanup()
	return nil
}

func (u *unit) cleanup() {
	for _, f := range []*os.File{u.f, u.qf} {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
}

func (u *unit) result(location string) sinks.Result {
	r := sinks.Result{Events: u.stats.events, New: u.stats.added, Vanished: u.stats.vanished, Quarantined: u.qrows, Bytes: u.size}
	if r.Events > 0 {
		r.Location = location
	}
	return r
}

// Quarantine records go to <table>_quarantine, replaced per window like data.
var quarantineArrow = arrow.NewSchema([]arrow.Field{
	{Name: "org_id", Type: arrow.BinaryTypes.String},
	{Name: "window_start", Type: event.TimestampType},
	{Name: "window_end", Type: event.TimestampType},
	{Name: "page", Type: arrow.PrimitiveTypes.Int64},
	{Name: "reason", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "raw", Type: arrow.BinaryTypes.String, Nullable: true},
}, nil)

func (u *unit) flushQuarantine() error {
	if len(u.qbuf) == 0 {
		return nil
	}
	if u.qw == nil {
		f, err := os.CreateTemp(u.s.cfg.TempDir, "vaultsink-bq-q-*.parquet")
		if err != nil {
			return fmt.Errorf("create quarantine parquet for %s: %w", u.w, err)
		}
		u.qf = f
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
		qw, err := pqarrow.NewFileWriter(quarantineArrow, struct{ io.Writer }{f}, props,
			pqarrow.NewArrowWriterProperties(pqarrow.WithCoerceTimestamps(arrow.Microsecond)))
		if err != nil {
			return fmt.Errorf("quarantine parquet writer for %s: %w", u.w, err)
		}
		u.qw = qw
	}
	b := array.NewRecordBuilder(memory.DefaultAllocator, quarantineArrow)
	defer b.Release()
	for _, q := range u.qbuf {
		b.Field(0).(*array.StringBuilder).Append(u.w.Org)
		b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(u.w.Start.UnixMicro()))
		b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(u.w.End.UnixMicro()))
		b.Field(3).(*array.Int64Builder).Append(int64(q.Page))
		b.Field(4).(*array.StringBuilder).Append(q.Reason)
		b.Field(5).(*array.StringBuilder).Append(q.Raw)
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	u.qbuf, u.qbytes = u.qbuf[:0], 0
	if err := writeQuarantine(u.qw, rec); err != nil {
		return fmt.Errorf("encode quarantine of %s: %w", u.w, err)
	}
	return nil
}
