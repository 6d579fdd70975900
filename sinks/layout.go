package sinks

import (
	"fmt"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"
)

// ObjectKey is the deterministic, Hive-style key of a window's Parquet data,
// relative to the sink's root or prefix:
//
//	org_id=<org>/date=2026-06-01/hour=10/events-20260601T1000Z-20260601T1100Z.parquet
//
// It is a pure function of the window, which is what makes a rerun replace
// the object instead of adding a second one.
func ObjectKey(w event.Window) string {
	return partition(w) + fmt.Sprintf("events-%s-%s.parquet", stamp(w.Start), stamp(w.End))
}

// QuarantineKey is the key of a window's quarantine file (JSON lines), relative
// to the sink's quarantine root, which readers of the data never scan.
func QuarantineKey(w event.Window) string {
	return partition(w) + fmt.Sprintf("quarantine-%s-%s.jsonl", stamp(w.Start), stamp(w.End))
}

func partition(w event.Window) string {
	s := w.Start.UTC()
	return fmt.Sprintf("org_id=%s/date=%s/hour=%02d/", w.Org, s.Format("2006-01-02"), s.Hour())
}

func stamp(t time.Time) string { return t.UTC().Format("20060102T1504Z") }

// ParseObjectKey reads the window an ObjectKey names, from its last three
// path elements (org_id=…/date=…/hour=…/events-…-….parquet, any prefix
// before them). ok is false for any other name, or when the partitions
// disagree with the file name.
func ParseObjectKey(key string) (w event.Window, ok bool) {
	parts := strings.Split(key, "/")
	if len(parts) < 4 {
		return w, false
	}
	parts = parts[len(parts)-4:]
	org, ok1 := strings.CutPrefix(parts[0], "org_id=")
	name, ok2 := strings.CutPrefix(parts[3], "events-")
	name, ok3 := strings.CutSuffix(name, ".parquet")
	a, b, ok4 := strings.Cut(name, "-")
	if !ok1 || !ok2 || !ok3 || !ok4 || org == "" {
		return w, false
	}
	start, err1 := time.Parse("20060102T1504Z", a)
	end, err2 := time.Parse("20060102T1504Z", b)
	if err1 != nil || err2 != nil || !start.Before(end) {
		return w, false
	}
	w = event.Window{Org: org, Start: start.UTC(), End: end.UTC()}
	if ObjectKey(w) != strings.Join(parts, "/") {
		return event.Window{}, false
	}
	return w, true
}
