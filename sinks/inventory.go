package sinks

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"
)

// Helpers the Inventory implementations share.

// HiddenKey reports whether a Hive reader skips key: one of its path
// elements starts with "." or "_" (temp files, _SUCCESS markers).
func HiddenKey(key string) bool {
	for _, el := range strings.Split(key, "/") {
		if strings.HasPrefix(el, ".") || strings.HasPrefix(el, "_") {
			return true
		}
	}
	return false
}

// Intersects reports whether w is a known range (both ends set) that
// intersects [from, to).
func Intersects(w event.Window, from, to time.Time) bool {
	return !w.Start.IsZero() && !w.End.IsZero() && w.Start.Before(to) && w.End.After(from)
}

// MayIntersect reports whether the unit u belongs in Inventory.Units for
// [from, to): its recorded or its named window intersects the range, or
// neither is known.
func MayIntersect(u UnitInfo, from, to time.Time) bool {
	if Intersects(u.Window, from, to) || Intersects(u.KeyWindow, from, to) {
		return true
	}
	known := func(w event.Window) bool { return !w.Start.IsZero() && !w.End.IsZero() }
	return !known(u.Window) && !known(u.KeyWindow)
}

// NearRange reports whether t lies within a day of [from, to): how far an
// Inventory looks at keys (a unit's key and its footer may disagree, but a
// window is never longer than a day).
func NearRange(t, from, to time.Time) bool {
	return !t.Before(from.Add(-24*time.Hour)) && t.Before(to.Add(24*time.Hour))
}

// ParseQuarantineName reads the window start a QuarantineKey file name
// ("quarantine-<start>-<end>.jsonl", the key's last element) names.
func ParseQuarantineName(name string) (time.Time, bool) {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	rest, ok := strings.CutPrefix(name, "quarantine-")
	if !ok {
		return time.Time{}, false
	}
	a, _, ok := strings.Cut(rest, "-")
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T1504Z", a)
	return t, err == nil
}

// QuarantineWindowStart parses the start of a quarantined record's window
// ("start/end" in RFC 3339, as event.Window.Range writes it).
func QuarantineWindowStart(rng string) (time.Time, error) {
	a, _, ok := strings.Cut(rng, "/")
	if !ok {
		return time.Time{}, fmt.Errorf("window %q is not start/end", rng)
	}
	t, err := time.Parse(time.RFC3339, a)
	if err != nil {
		return time.Time{}, fmt.Errorf("window %q: %w", rng, err)
	}
	return t.UTC(), nil
}

// QuarantineLines decodes the JSON lines of a quarantine file (one
// event.Quarantined each, as the local and S3 sinks write them) and calls
// fn with those whose window starts in [from, to). A line that does not
// decode, or whose window does not parse, is an error naming the line.
// Lines are read whole whatever their length (a raw record may be long).
func QuarantineLines(r io.Reader, from, to time.Time, fn func(event.Quarantined) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var q event.Quarantined
			if jerr := json.Unmarshal(line, &q); jerr != nil {
				return fmt.Errorf("line %d: %w", n, jerr)
			}
			start, perr := QuarantineWindowStart(q.Window)
			if perr != nil {
				return fmt.Errorf("line %d: %w", n, perr)
			}
			if !start.Before(from) && start.Before(to) {
				if ferr := fn(q); ferr != nil {
					return ferr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
