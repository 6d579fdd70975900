package vaultsim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Faults are the injected failures, each a probability in [0,1] except
// RevokeAfter. Per-event faults (late, redeliver) are drawn from the event
// alone. Per-request faults (429, 5xx, slow, cut, malformed, offhost)
// are drawn from hash(seed, kind, org, exact query, attempt of that query),
// so they are reproducible whatever the interleaving of clients, and a retry
// (the next attempt) draws again. A rate below 1 never fires on the 9th or
// later attempt of the same query, so a retrying client always gets through;
// a rate of 1 always fires.
type Faults struct {
	TooMany   float64 // 429 with Retry-After
	E500      float64
	E502      float64
	E503      float64
	Slow      float64 // the response waits SlowDelay first
	Cut       float64 // headers and part of the body, then the connection closes
	Malformed float64 // 200 with a truncated JSON body
	// Dup repeats the last event of a page as the first of the next, decided
	// per page boundary (not per attempt). Cursor-based profiles only.
	Dup float64
	// Late is the share of events visible only LateDelay after their timestamp.
	Late float64
	// OffHost makes the Link next URL (link profile only) point at OffHost.
	OffHost float64
	// Redeliver is the share of events served a second time, with the same
	// id and content, timestamped RedeliverDelay after the original and
	// sorted into the stream there. Chosen per event id, like Late, not per
	// request; the truth keeps each id once, at its original time.
	Redeliver float64
	// BadTimestamp is the share of events served with an unparseable
	// timestamp ("not a time"): records a client must quarantine, never
	// drop. Chosen per event id; the truth still holds them.
	BadTimestamp float64
	// RevokeAfter revokes each credential after this many authorized
	// requests (then 401 token_revoked); 0 = never.
	RevokeAfter int
}

// maxFaultAttempts: attempts of one query at or past this never fault
// (unless the rate is 1).
const maxFaultAttempts = 8

var faultKeys = []string{"429", "500", "502", "503", "slow", "cut", "malformed", "dup", "late", "offhost", "redeliver", "badts"}

func (f *Faults) rate(kind string) *float64 {
	switch kind {
	case "429":
		return &f.TooMany
	case "500":
		return &f.E500
	case "502":
		return &f.E502
	case "503":
		return &f.E503
	case "slow":
		return &f.Slow
	case "cut":
		return &f.Cut
	case "malformed":
		return &f.Malformed
	case "dup":
		return &f.Dup
	case "late":
		return &f.Late
	case "offhost":
		return &f.OffHost
	case "redeliver":
		return &f.Redeliver
	case "badts":
		return &f.BadTimestamp
	}
	return nil
}

// ParseFaults parses "429=0.05,500=0.02,slow=0.01,revoke-after=100".
func ParseFaults(s string) (Faults, error) {
	var f Faults
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return Faults{}, fmt.Errorf("parse faults: %q: want kind=rate", item)
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if k == "revoke-after" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return Faults{}, fmt.Errorf("parse faults: revoke-after=%q: want a count >= 0", v)
			}
			f.RevokeAfter = n
			continue
		}
		p := f.rate(k)
		if p == nil {
			return Faults{}, fmt.Errorf("parse faults: unknown kind %q (want one of %s, revoke-after)", k, strings.Join(faultKeys, ", "))
		}
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			return Faults{}, fmt.Errorf("parse faults: %s=%q: want a rate in [0,1]", k, v)
		}
		*p = r
	}
	return f, nil
}

// String renders f in ParseFaults syntax.
func (f Faults) String() string {
	var parts []string
	for _, k := range faultKeys {
		if r := *f.rate(k); r > 0 {
			parts = append(parts, k+"="+strconv.FormatFloat(r, 'g', -1, 64))
		}
	}
	if f.RevokeAfter > 0 {
		parts = append(parts, "revoke-after="+strconv.Itoa(f.RevokeAfter))
	}
	return strings.Join(parts, ",")
}

func (f Faults) validate() error {
	for _, k := range faultKeys {
		if r := *f.rate(k); r < 0 || r > 1 {
			return fmt.Errorf("fault %s=%v: want a rate in [0,1]", k, r)
		}
	}
	if f.RevokeAfter < 0 {
		return errors.New("fault revoke-after: must not be negative")
	}
	return nil
}

// fires decides fault kind for attempt n of (org, query).
func (f *Faults) fires(seed uint64, kind, org, query string, attempt int) bool {
	r := *f.rate(kind)
	if r <= 0 {
		return false
	}
	if r >= 1 {
		return true
	}
	if attempt >= maxFaultAttempts {
		return false
	}
	h := mix(seed ^ hashString(kind+"\x00"+org+"\x00"+query) ^ mix(uint64(attempt)+0xfa17))
	return unit(h) < r
}
