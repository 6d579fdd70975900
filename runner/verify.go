package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// `vaultsink verify` (Engine.Verify) compares what a sink holds for an org
// with what the API returns, without the window arithmetic sync uses, so
// that it can disagree with a sync that went wrong:
//
//   - The sink is read through its sinks.Inventory: every unit it holds for
//     the org near the range, under any key and of any window size. Rows
//     are assigned to windows by their own timestamps, not by the unit
//     they sit in, and every unit is read once.
//   - The API's truth for a window is a walk of the whole window and, when
//     the walk depends on a guess (auto or page pagination with RFC 3339
//     bounds), of its four quarters too: a walk that stops early (a page
//     size the API silently caps, an end the client misjudged) cannot
//     match the quarters, which hold fewer events each. The truth is the
//     union of all the walks.
//   - Windows past the org's checkpoint or not closed by the API's clock
//     are "not synced yet": reported, not compared.
//   - An id the API returns in two adjacent windows (a copy delivered
//     later) is archived once: held in either window, it is not missing.
//
// Memory is one window's API ids, and the rows the sink holds for it and
// the next window (with the rest of the units that cover them), never the
// whole range.

// VerifyShow is how many ids an IDSample keeps.
const VerifyShow = 5

// IDSample counts ids and keeps the VerifyShow smallest (a deterministic
// "first few").
type IDSample struct {
	N     int
	First []string
}

func (s *IDSample) add(id string) {
	s.N++
	i, found := slices.BinarySearch(s.First, id)
	if found || i >= VerifyShow {
		return
	}
	s.First = slices.Insert(s.First, i, id)
	if len(s.First) > VerifyShow {
		s.First = s.First[:VerifyShow]
	}
}

// String is "first 5 of N: a, b, c, d, e", or "N: a, b" when all are shown.
func (s IDSample) String() string {
	list := strings.Join(s.First, ", ")
	if s.N > len(s.First) {
		return fmt.Sprintf("first %d of %d: %s", len(s.First), s.N, list)
	}
	return fmt.Sprintf("%d: %s", s.N, list)
}

// VerifyWindow is one window's comparison.
type VerifyWindow struct {
	Window event.Window
	// NotSynced says why the window was not compared ("" when it was):
	// it ends after the org's checkpoint, or is not closed at the API.
	NotSynced string
	API       int // distinct ids the API returns for the window (every walk)
	Sink      int // rows the sink holds with a timestamp in the window, from every unit
	Units     int // units those rows come from
	// Missing: in the API, not in the sink (nor in a quarantine nearby).
	// QuarantineOnly: in the API, not in the sink, but in a quarantined
	// record of this window or an adjacent one (a boundary event the sync
	// set aside). Extra: in the sink, not in the API. Duplicated: held
	// more than once in the window, or in this window and the previous
	// one. Outside: rows whose timestamp lies outside the range their
	// unit records (counted by row).
	Missing, QuarantineOnly, Extra, Duplicated, Outside IDSample
	// Adjacent: in the API for this window, held once in the previous or
	// the next window (a repeat of an id across a boundary is archived
	// once). Not a difference.
	Adjacent IDSample
	// Paging is the sub-window cross-check; nil when it did not run.
	Paging *PagingCheck
}

// PagingCheck compares the walk of a whole window with the walks of its
// quarters.
type PagingCheck struct {
	Whole, Split int // distinct ids of the whole-window walk and of the quarters' walks
	OnlySplit    int // ids only the quarters returned (the whole walk was truncated)
	OnlyWhole    int // ids only the whole walk returned
}

// Differs reports whether the walks disagreed.
func (p *PagingCheck) Differs() bool { return p != nil && (p.OnlySplit > 0 || p.OnlyWhole > 0) }

// Differs reports whether the window's sink disagrees with the API (or the
// API with itself).
func (v VerifyWindow) Differs() bool {
	return v.NotSynced == "" && (v.Missing.N > 0 || v.QuarantineOnly.N > 0 || v.Extra.N > 0 ||
		v.Duplicated.N > 0 || v.Outside.N > 0 || v.Paging.Differs())
}

// Kinds of VerifyFinding.
const (
	FindingOverlap     = "overlap"      // units whose recorded ranges overlap
	FindingKeyMismatch = "key-mismatch" // the key names another window than the footer
	FindingSize        = "size"         // a unit of another size than the configured window, or off its boundaries
	FindingUnreadable  = "unreadable"   // a unit that cannot be read
	FindingNoWindow    = "no-window"    // a unit that records no window
	FindingOtherOrg    = "other-org"    // a unit whose footer names another org
	FindingOutside     = "outside"      // rows outside their unit's recorded range
	FindingHidden      = "hidden"       // a temp or hidden file Hive readers skip (info)
)

// VerifyFinding is something wrong with the org's units, whatever window.
type VerifyFinding struct {
	Kind   string
	Unit   string // the unit's key
	Detail string
	Info   bool // worth knowing, not a difference
}

// VerifySummary is the outcome of Verify for one org.
type VerifySummary struct {
	Org                     string
	Windows                 int   // windows compared
	NotSynced               int   // windows not synced yet
	Differ                  int   // compared windows that differ
	PagingDiffers           int   // windows whose sub-window walks disagreed with the whole walk
	Units                   int   // units listed
	API, Sink               int64 // distinct events (one the API returns in two adjacent windows counts once), rows
	Missing, QuarantineOnly int64
	Extra, Duplicated       int64
	Outside                 int64
	Adjacent                int64 // ids held once in an adjacent window (not a difference)
	Findings                []VerifyFinding
	// What the comparison went by: the org's checkpoint (Checkpoint is
	// false when it has none), the API's clock, and whether the paging
	// cross-check ran.
	Checkpoint    bool
	CheckpointEnd time.Time
	APINow        time.Time
	CrossChecked  bool
}

// Add counts o's windows, events and findings into s (for a total over
// orgs; the per-org fields keep s's).
func (s *VerifySummary) Add(o VerifySummary) {
	s.Windows += o.Windows
	s.NotSynced += o.NotSynced
	s.Differ += o.Differ
	s.PagingDiffers += o.PagingDiffers
	s.Units += o.Units
	s.API += o.API
	s.Sink += o.Sink
	s.Missing += o.Missing
	s.QuarantineOnly += o.QuarantineOnly
	s.Extra += o.Extra
	s.Duplicated += o.Duplicated
	s.Outside += o.Outside
	s.Adjacent += o.Adjacent
	s.Findings = append(s.Findings, o.Findings...)
}

// OK reports whether nothing differs and no finding (other than info) was
// made.
func (s VerifySummary) OK() bool {
	if s.Differ > 0 {
		return false
	}
	for _, f := range s.Findings {
		if !f.Info {
			return false
		}
	}
	return true
}

// vunit is a unit Verify reads.
type vunit struct {
	sinks.UnitInfo
	rng     event.Window // the range it records (footer, else key); zero when unknown
	table   bool         // a sink without units: read a window at a time
	outside IDSample
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func known(w event.Window) bool { return !w.Start.IsZero() && !w.End.IsZero() }

// vrow is a row of the sink, assigned to a window by its timestamp.
type vrow struct {
	id      string
	unit    int32
	outside bool
}

// Verify compares the org's windows that cover [from, to) with the API,
// calling emit with every window in order (compared or not synced), and
// returns the totals and the findings about the org's units.
func (e *Engine) Verify(ctx context.Context, spec OrgSpec, from, to time.Time, emit func(VerifyWindow)) (VerifySummary, error) {
	org := spec.Org.ID
	sum := VerifySummary{Org: org}
	inv, ok := spec.Sink.(sinks.Inventory)
	if !ok {
		return sum, fmt.Errorf("verify org %s: the sink %s cannot list what it holds", org, spec.Sink.Identity())
	}
	size := spec.Window
	ws := Windows(org, from, to, size)
	if len(ws) == 0 {
		return sum, nil
	}
	cp, err := e.o.Store.Get(ctx, org)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
	case err != nil:
		return sum, fmt.Errorf("verify org %s: %w", org, err)
	default:
		sum.Checkpoint, sum.CheckpointEnd = true, cp.End
	}
	now := e.apiNow(ctx, spec)
	sum.APINow = now
	horizon := now.Add(-e.o.Settle)

	// steps[0] is the window before the first: its rows are read only to
	// find ids repeated across the first boundary.
	steps := append([]event.Window{{Org: org, Start: ws[0].Start.Add(-size), End: ws[0].Start}}, ws...)
	first, last := steps[0].Start, steps[len(steps)-1].End
	lo, hi := from.Add(-24*time.Hour), to.Add(24*time.Hour)
	if first.Before(lo) {
		lo = first
	}
	if last.After(hi) {
		hi = last
	}
	infos, err := inv.Units(ctx, org, lo, hi)
	if err != nil {
		return sum, fmt.Errorf("verify org %s: %w", org, err)
	}
	sum.Units = len(infos)
	units := e.verifyUnits(org, infos, lo, hi, size, ws[0].Start, last, &sum)

	cfg := e.o.Source.Config()
	crossCheck := (cfg.Pagination == "auto" || cfg.Pagination == "page") && cfg.TimeFormat == "rfc3339"
	sum.CrossChecked = crossCheck
	v := &verifier{e: e, spec: spec, inv: inv, units: units, steps: steps, size: size,
		buckets: map[int][]vrow{}, quar: map[int]map[string]bool{}, aliases: cfg.Fields.ID}
	for i, u := range units {
		if !u.table {
			v.order = append(v.order, i)
		}
	}
	slices.SortStableFunc(v.order, func(a, b int) int {
		ra, rb := units[a].rng, units[b].rng
		if !known(ra) || !known(rb) {
			return boolInt(known(ra)) - boolInt(known(rb))
		}
		return ra.Start.Compare(rb.Start)
	})
	var prev map[string]int
	for k, w := range steps {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		// The next window's rows are read too: an id the API returns in
		// this window may be archived, once, in the next.
		v.cur = k
		if err := v.readThrough(ctx, min(k+1, len(steps)-1)); err != nil {
			return sum, fmt.Errorf("verify org %s: %w", org, err)
		}
		rows := v.buckets[k]
		delete(v.buckets, k)
		held := make(map[string]int, len(rows))
		for _, r := range rows {
			held[r.id]++
		}
		if k == 0 {
			prev = held
			continue
		}
		vw := VerifyWindow{Window: w, Sink: len(rows)}
		switch {
		case !sum.Checkpoint:
			vw.NotSynced = "the org has no checkpoint"
		case cp.End.IsZero():
			vw.NotSynced = "the org's checkpoint records no window"
		case w.End.After(cp.End):
			vw.NotSynced = "past the checkpoint " + fmtTime(cp.End)
		case w.End.After(horizon):
			vw.NotSynced = "not closed at the API (its clock says " + fmtTime(now) + ")"
		}
		if vw.NotSynced != "" {
			sum.NotSynced++
			emit(vw)
			prev = held
			continue
		}
		if err := v.compare(ctx, k, rows, held, prev, crossCheck, &vw); err != nil {
			return sum, fmt.Errorf("verify %s: %w", w, err)
		}
		sum.Windows++
		sum.API += int64(vw.API - vw.Adjacent.N) // an id in two windows is one event
		sum.Sink += int64(vw.Sink)
		sum.Missing += int64(vw.Missing.N)
		sum.QuarantineOnly += int64(vw.QuarantineOnly.N)
		sum.Extra += int64(vw.Extra.N)
		sum.Duplicated += int64(vw.Duplicated.N)
		sum.Outside += int64(vw.Outside.N)
		sum.Adjacent += int64(vw.Adjacent.N)
		if vw.Paging.Differs() {
			sum.PagingDiffers++
		}
		if vw.Differs() {
			sum.Differ++
		}
		emit(vw)
		prev = held
		v.forgetQuarantine(k - 1)
	}
	for _, u := range units {
		if u.outside.N > 0 {
			sum.Findings = append(sum.Findings, VerifyFinding{Kind: FindingOutside, Unit: u.Key,
				Detail: fmt.Sprintf("rows outside the range %s it records: %s", u.rng.Range(), u.outside)})
		}
	}
	return sum, nil
}

// verifyUnits classifies the listed units, records the findings about
// them that need no rows (in sum), and returns the ones to read. Findings
// are made for units whose range meets [first, last) or is unknown.
func (e *Engine) verifyUnits(org string, infos []sinks.UnitInfo, lo, hi time.Time, size time.Duration, first, last time.Time, sum *VerifySummary) []*vunit {
	var units []*vunit
	add := func(kind, key, format string, a ...any) {
		sum.Findings = append(sum.Findings, VerifyFinding{Kind: kind, Unit: key, Detail: fmt.Sprintf(format, a...), Info: kind == FindingHidden})
	}
	for _, info := range infos {
		u := &vunit{UnitInfo: info, rng: info.Window}
		if !known(u.rng) {
			u.rng = info.KeyWindow
		}
		relevant := !known(u.rng) || sinks.Intersects(u.rng, first, last)
		// A sink without units lists its table as one unit covering
		// exactly the range asked for, under no object key.
		u.table = !known(info.KeyWindow) && info.Err == nil && !info.Hidden &&
			info.Window.Start.Equal(lo) && info.Window.End.Equal(hi)
		switch {
		case info.Hidden:
			if relevant {
				add(FindingHidden, info.Key, "a hidden or temp file: Hive readers skip it, and so does verify (a sync in progress, or one that died)")
			}
			continue
		case info.Err != nil:
			if relevant {
				add(FindingUnreadable, info.Key, "cannot be read: %v", info.Err)
			}
			continue
		case u.table:
			units = append(units, u)
			continue
		}
		units = append(units, u)
		if !relevant {
			continue
		}
		fw, kw := info.Window, info.KeyWindow
		if !known(fw) {
			add(FindingNoWindow, info.Key, "its footer records no window (not written by vaultsink?); its rows are compared by their timestamps")
		}
		if fw.Org != "" && fw.Org != org {
			add(FindingOtherOrg, info.Key, "its footer names org %s, the key org %s", fw.Org, org)
		}
		if known(fw) && known(kw) && (!fw.Start.Equal(kw.Start) || !fw.End.Equal(kw.End)) {
			add(FindingKeyMismatch, info.Key, "its key names window %s, its footer %s: moved or copied under another window's key", kw.Range(), fw.Range())
		}
		if known(fw) {
			if d := fw.End.Sub(fw.Start); d != size {
				add(FindingSize, info.Key, "holds a %s window (%s), the org's window is %s", durfmt.String(d), fw.Range(), durfmt.String(size))
			} else if !aligned(fw.Start, size) {
				add(FindingSize, info.Key, "its window %s is not on a %s boundary", fw.Range(), durfmt.String(size))
			}
		}
	}
	// Overlaps: sorted by start (longer first), each unit against the ones
	// still open when it starts.
	var ranged []*vunit
	for _, u := range units {
		if !u.table && known(u.rng) {
			ranged = append(ranged, u)
		}
	}
	slices.SortStableFunc(ranged, func(a, b *vunit) int {
		if c := a.rng.Start.Compare(b.rng.Start); c != 0 {
			return c
		}
		return b.rng.End.Compare(a.rng.End)
	})
	var open []*vunit
	over := map[*vunit]*IDSample{}
	var order []*vunit
	for _, u := range ranged {
		open = slices.DeleteFunc(open, func(a *vunit) bool { return !a.rng.End.After(u.rng.Start) })
		for _, a := range open {
			common := event.Window{Start: u.rng.Start, End: u.rng.End}
			if a.rng.End.Before(common.End) {
				common.End = a.rng.End
			}
			if !sinks.Intersects(common, first, last) {
				continue
			}
			s := over[a]
			if s == nil {
				s = &IDSample{}
				over[a] = s
				order = append(order, a)
			}
			s.add(u.Key)
		}
		open = append(open, u)
	}
	for _, a := range order {
		s := over[a]
		add(FindingOverlap, a.Key, "its range %s overlaps other units of the org (a Hive reader sees their rows twice): %s", a.rng.Range(), s)
	}
	return units
}

// verifier walks an org's windows in order.
type verifier struct {
	e       *Engine
	spec    OrgSpec
	inv     sinks.Inventory
	units   []*vunit
	steps   []event.Window
	size    time.Duration
	order   []int                   // indexes of the units read whole, in reading order
	next    int                     // the first of order not read yet
	readTo  int                     // the first step not read yet
	cur     int                     // the step being compared
	buckets map[int][]vrow          // step -> rows not compared yet
	quar    map[int]map[string]bool // step -> ids of the window's quarantined records
	aliases []string
}

// stepOf is the step whose window holds t, or -1 outside them.
func (v *verifier) stepOf(t time.Time) int {
	if t.Before(v.steps[0].Start) || !t.Before(v.steps[len(v.steps)-1].End) {
		return -1
	}
	return int(t.Sub(v.steps[0].Start) / v.size)
}

// readThrough reads the rows of every step up to k not read yet.
func (v *verifier) readThrough(ctx context.Context, k int) error {
	for ; v.readTo <= k; v.readTo++ {
		if err := v.readStep(ctx, v.readTo); err != nil {
			return err
		}
	}
	return nil
}

// readStep reads every unit not read yet that may hold rows of step k's
// window: those whose range starts before the window's end, and (at the
// first step) those whose range is unknown. A table is read a window at a
// time. Rows go to the step their timestamp falls in; a row of a step
// already compared can only lie before its unit's range, so it is reported
// with the unit's outside rows only.
func (v *verifier) readStep(ctx context.Context, k int) error {
	w := v.steps[k]
	for i, u := range v.units {
		if !u.table {
			continue
		}
		info := u.UnitInfo
		info.Window = w
		err := v.inv.UnitRows(ctx, info, func(id string, ts time.Time) error {
			v.buckets[k] = append(v.buckets[k], vrow{id: id, unit: int32(i)})
			return nil
		})
		if err != nil {
			return fmt.Errorf("read %s for %s: %w", u.Key, w.Range(), err)
		}
	}
	// v.order lists the other units, those of unknown range first, then
	// by the start of their range.
	for ; v.next < len(v.order); v.next++ {
		i := v.order[v.next]
		u := v.units[i]
		if known(u.rng) && !u.rng.Start.Before(w.End) {
			break
		}
		err := v.inv.UnitRows(ctx, u.UnitInfo, func(id string, ts time.Time) error {
			out := known(u.rng) && !u.rng.Contains(ts)
			if out {
				u.outside.add(id + " at " + ts.Format(time.RFC3339Nano))
			}
			if s := v.stepOf(ts); s >= v.cur {
				v.buckets[s] = append(v.buckets[s], vrow{id: id, unit: int32(i), outside: out})
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read unit %s: %w", u.Key, err)
		}
	}
	return nil
}

// compare fills vw for the window of step k: the API's ids against the
// rows the sink holds in it (held counts them by id; prev is the previous
// window's).
func (v *verifier) compare(ctx context.Context, k int, rows []vrow, held, prev map[string]int, crossCheck bool, vw *VerifyWindow) error {
	w := v.steps[k]
	truth, err := v.walk(ctx, w)
	if err != nil {
		return err
	}
	if crossCheck {
		split := map[string]struct{}{}
		quarter := v.size / 4
		for i := range 4 {
			sw := event.Window{Org: w.Org, Start: w.Start.Add(time.Duration(i) * quarter), End: w.Start.Add(time.Duration(i+1) * quarter)}
			if i == 3 {
				sw.End = w.End
			}
			ids, err := v.walk(ctx, sw)
			if err != nil {
				return err
			}
			for id := range ids {
				split[id] = struct{}{}
			}
		}
		p := &PagingCheck{Whole: len(truth), Split: len(split)}
		for id := range truth {
			if _, ok := split[id]; !ok {
				p.OnlyWhole++
				split[id] = struct{}{}
			}
		}
		p.OnlySplit = p.Split - (p.Whole - p.OnlyWhole)
		vw.Paging = p
		truth = split // the union of every walk
	}
	vw.API = len(truth)
	units := map[int32]bool{}
	for _, r := range rows {
		units[r.unit] = true
		if r.outside {
			vw.Outside.add(r.id)
		}
	}
	vw.Units = len(units)
	for id, n := range held {
		if _, ok := truth[id]; !ok {
			vw.Extra.add(id)
		}
		if n > 1 || prev[id] > 0 {
			vw.Duplicated.add(id)
		}
	}
	missing := map[string]bool{}
	for id := range truth {
		if held[id] == 0 {
			missing[id] = true
		}
	}
	if len(missing) == 0 {
		return nil
	}
	// An id held in an adjacent window is archived once, there (a copy
	// the API returns later, with a later timestamp): not missing.
	adjacent := func(id string) {
		if missing[id] {
			delete(missing, id)
			vw.Adjacent.add(id)
		}
	}
	for id := range prev {
		adjacent(id)
	}
	for _, r := range v.buckets[k+1] {
		adjacent(r.id)
	}
	if len(missing) == 0 {
		return nil
	}
	near := make([]map[string]bool, 0, 3)
	for _, s := range []int{k - 1, k, k + 1} {
		q, err := v.quarantined(ctx, s)
		if err != nil {
			return err
		}
		near = append(near, q)
	}
	for id := range missing {
		if near[0][id] || near[1][id] || near[2][id] {
			vw.QuarantineOnly.add(id)
		} else {
			vw.Missing.add(id)
		}
	}
	return nil
}

// walk returns the distinct ids the API returns for w.
func (v *verifier) walk(ctx context.Context, w event.Window) (map[string]struct{}, error) {
	ids := map[string]struct{}{}
	_, err := v.e.o.Source.Walk(ctx, v.spec.Org, w, nil, source.WalkOptions{}, func(p source.Page) error {
		if p.Rec == nil {
			return nil
		}
		defer p.Rec.Release()
		col, ok := p.Rec.Column(event.ColEventID).(*array.String)
		if !ok {
			return errors.New("event_id column is not a string array")
		}
		for i := range col.Len() {
			ids[col.Value(i)] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk the API for %s: %w", w.Range(), err)
	}
	return ids, nil
}

// quarantined returns the ids of the records the sink quarantined for the
// window of step s (s may be one past the last), read once and kept until
// forgetQuarantine.
func (v *verifier) quarantined(ctx context.Context, s int) (map[string]bool, error) {
	if q, ok := v.quar[s]; ok {
		return q, nil
	}
	start := v.steps[0].Start.Add(time.Duration(s) * v.size)
	q := map[string]bool{}
	err := v.inv.QuarantinedIn(ctx, v.spec.Org.ID, start, start.Add(v.size), func(r event.Quarantined) error {
		if id, ok := rawID(r.Raw, v.aliases); ok {
			q[id] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the quarantine of %s: %w", start.UTC().Format(time.RFC3339), err)
	}
	v.quar[s] = q
	return q, nil
}

// forgetQuarantine drops what quarantined read for steps up to s.
func (v *verifier) forgetQuarantine(s int) {
	for k := range v.quar {
		if k <= s {
			delete(v.quar, k)
		}
	}
}

// rawID is the event id of a quarantined record's raw JSON, as the decoder
// maps it: the first of aliases present with a non-empty string or a
// number.
func rawID(raw string, aliases []string) (string, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(raw), &m) != nil {
		return "", false
	}
	for _, a := range aliases {
		v, ok := m[a]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) == nil {
			if s != "" {
				return s, true
			}
			continue
		}
		var n json.Number
		if json.Unmarshal(v, &n) == nil {
			return n.String(), true
		}
	}
	return "", false
}
