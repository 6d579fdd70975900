package sinktest

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// FileInfo is what CheckParquet learned from a file with parquet-go, a
// reader independent of the writer (sinks/pqenc, on arrow-go's metadata).
type FileInfo struct {
	Rows     int64
	Metadata map[string]string // file key-value metadata
	IDs      []string          // the event_id column, in file order
}

// CheckParquet reads a committed Parquet file with parquet-go and checks what
// warehouse readers rely on: both timestamp columns are INT64
// TIMESTAMP(MICROS, isAdjustedToUTC=true) (never INT96, never nanoseconds),
// the column order is event.Schema's, and the vaultsink.* metadata names w
// and the row count. It returns the file's ids for the caller to compare.
func CheckParquet(data []byte, w event.Window) (FileInfo, error) {
	f, err := parquet.OpenFile(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return FileInfo{}, fmt.Errorf("open parquet: %w", err)
	}
	md := f.Metadata()
	info := FileInfo{Rows: md.NumRows, Metadata: map[string]string{}}
	for _, kv := range md.KeyValueMetadata {
		info.Metadata[kv.Key] = kv.Value
	}

	leaves := md.Schema[1:]
	if len(leaves) != event.NumColumns {
		return info, fmt.Errorf("schema has %d columns, want %d", len(leaves), event.NumColumns)
	}
	for i, el := range leaves {
		want := event.Schema.Field(i)
		if el.Name != want.Name {
			return info, fmt.Errorf("column %d is %q, want %q", i, el.Name, want.Name)
		}
		if el.Type.Valid && el.Type.V == format.Int96 {
			return info, fmt.Errorf("column %s is INT96", el.Name)
		}
		if i != event.ColTimestamp && i != event.ColIngestedAt {
			continue
		}
		ts, ok := el.LogicalType.Value.(*format.TimestampType)
		if !el.Type.Valid || el.Type.V != format.Int64 || !ok {
			return info, fmt.Errorf("column %s: physical %v logical %v, want INT64 TIMESTAMP", el.Name, el.Type.V, &el.LogicalType)
		}
		if _, micros := ts.Unit.Value.(*format.MicroSeconds); !micros || !ts.IsAdjustedToUTC {
			return info, fmt.Errorf("column %s: %v, want TIMESTAMP(isAdjustedToUTC=true,unit=MICROS)", el.Name, ts)
		}
	}

	checks := map[string]string{
		"vaultsink.org":            w.Org,
		"vaultsink.window_start":   w.Start.UTC().Format(time.RFC3339),
		"vaultsink.window_end":     w.End.UTC().Format(time.RFC3339),
		"vaultsink.schema_version": event.SchemaVersion,
		"vaultsink.event_count":    strconv.FormatInt(md.NumRows, 10),
	}
	for k, want := range checks {
		if got, ok := info.Metadata[k]; !ok || got != want {
			return info, fmt.Errorf("metadata %s = %q (present %t), want %q", k, got, ok, want)
		}
	}
	if _, ok := info.Metadata["vaultsink.version"]; !ok {
		return info, fmt.Errorf("metadata vaultsink.version missing")
	}

	col, ok := f.Schema().Lookup("event_id")
	if !ok {
		return info, fmt.Errorf("no event_id column")
	}
	for _, rg := range f.RowGroups() {
		pages := rg.ColumnChunks()[col.ColumnIndex].Pages()
		for {
			p, err := pages.ReadPage()
			if err == io.EOF {
				break
			}
			if err != nil {
				pages.Close()
				return info, fmt.Errorf("read event_id page: %w", err)
			}
			vals := make([]parquet.Value, p.NumValues())
			n, err := p.Values().ReadValues(vals)
			if err != nil && err != io.EOF {
				parquet.Release(p)
				pages.Close()
				return info, fmt.Errorf("read event_id values: %w", err)
			}
			for _, v := range vals[:n] {
				info.IDs = append(info.IDs, v.String())
			}
			parquet.Release(p)
		}
		pages.Close()
	}
	if int64(len(info.IDs)) != info.Rows {
		return info, fmt.Errorf("read %d event ids, file says %d rows", len(info.IDs), info.Rows)
	}
	return info, nil
}
