package sinks

import (
	"fmt"
	"time"

	"github.com/vaultsink/vaultsink/source"
)

// ObjectKey is the deterministic, Hive-style key of a window's Parquet data,
// relative to the sink's root or prefix:
//
//	org_id=<org>/date=2026-06-01/hour=10/events-20260601T1000Z-20260601T1100Z.parquet
//
// It is a pure function of the window, which is what makes a rerun replace
// the object instead of adding a second one.
func ObjectKey(w source.Window) string {
	return partition(w) + fmt.Sprintf("events-%s-%s.parquet", stamp(w.Start), stamp(w.End))
}

// QuarantineKey is the key of a window's quarantine file (JSON lines), relative
// to the sink's quarantine root, which readers of the data never scan.
func QuarantineKey(w source.Window) string {
	return partition(w) + fmt.Sprintf("quarantine-%s-%s.jsonl", stamp(w.Start), stamp(w.End))
}

func partition(w source.Window) string {
	s := w.Start.UTC()
	return fmt.Sprintf("org_id=%s/date=%s/hour=%02d/", w.Org, s.Format("2006-01-02"), s.Hour())
}

func stamp(t time.Time) string { return t.UTC().Format("20060102T1504Z") }
