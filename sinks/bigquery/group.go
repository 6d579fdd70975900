package bigquery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/vaultsink/vaultsink/sinks"
	"google.golang.org/api/iterator"
)

// The group commit: units from many orgs gathered for group_delay, loaded
// into staging tables and committed in one transaction (doc.go).

// CommitBatch commits units (any orgs, any windows) with one load job and
// one DML statement: all of them or none.
func (s *Sink) CommitBatch(ctx context.Context, units []sinks.Unit) ([]sinks.Result, error) {
	us := make([]*unit, len(units))
	for i, x := range units {
		u, ok := x.(*unit)
		if !ok || u.s != s {
			return nil, fmt.Errorf("bigquery commit batch: unit %d does not belong to this sink", i)
		}
		if u.done {
			return nil, fmt.Errorf("bigquery commit batch: unit %s already committed or aborted", u.w)
		}
		us[i] = u
	}
	return s.commit(ctx, us)
}

func (s *Sink) commit(ctx context.Context, us []*unit) ([]sinks.Result, error) {
	for _, u := range us {
		if err := u.finish(); err != nil {
			return nil, err
		}
	}
	results := make([]sinks.Result, len(us))
	// Every unit takes part, even one with nothing to write: its window's
	// earlier quarantine is replaced and what the table holds for it is
	// counted (Result.Events, Vanished).
	{
		req := &commitReq{units: us, done: make(chan error, 1)}
		select {
		case s.reqs <- req:
		case <-ctx.Done():
			return nil, fmt.Errorf("bigquery commit: %w", ctx.Err())
		case <-s.ctx.Done():
			return nil, errors.New("bigquery commit: sink closed")
		}
		// Once a group holds the units it reads their files, so the caller
		// waits for it even if ctx ends (Close cancels a running group).
		if err := <-req.done; err != nil {
			return nil, err
		}
	}
	for i, u := range us {
		results[i] = u.result(s.target())
		u.done = true
		u.cleanup()
	}
	return results, nil
}

// unitStats is what the table holds for a unit's window after its commit.
type unitStats struct {
	events, added, vanished int64
}

// commitReq is one caller's units waiting for a group commit.
type commitReq struct {
	units []*unit
	done  chan error
}

func (r *commitReq) slices() int { return len(r.units) }

// groupLoop merges commits that arrive while a group is gathered or running
// into the next group: one load and one transaction for all of them. Only
// one group runs at a time: two transactions of this process on the table
// would only cancel each other (see the package doc on conflicts).
func (s *Sink) groupLoop() {
	defer s.wg.Done()
	var carry *commitReq
	for {
		var first *commitReq
		if carry != nil {
			first, carry = carry, nil
		} else {
			select {
			case first = <-s.reqs:
			case <-s.ctx.Done():
				return
			}
		}
		group := []*commitReq{first}
		n := first.slices()
		var timer <-chan time.Time
		if s.cfg.GroupDelay > 0 {
			timer = time.After(s.cfg.GroupDelay)
		}
	gather:
		for n < s.cfg.MaxGroupSlices {
			var r *commitReq
			if timer == nil {
				select {
				case r = <-s.reqs:
				default:
					break gather
				}
			} else {
				select {
				case r = <-s.reqs:
				case <-timer:
					break gather
				case <-s.ctx.Done():
					break gather
				}
			}
			if n+r.slices() > s.cfg.MaxGroupSlices || overlaps(group, r) {
				carry = r
				break
			}
			group = append(group, r)
			n += r.slices()
		}
		s.runGroup(group)
	}
}

// runGroup commits a group under its own deadline (commit_timeout): a stuck
// group fails alone and the next one starts. When the fence check refuses
// the group, the requests of the org it names fail with a FencedError and
// the others are committed again without them.
func (s *Sink) runGroup(group []*commitReq) {
	for len(group) > 0 {
		var units []*unit
		for _, r := range group {
			units = append(units, r.units...)
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.CommitTimeout)
		err := s.commitGroup(ctx, units, len(group))
		if err != nil && s.ctx.Err() == nil {
			switch {
			case ctx.Err() == context.DeadlineExceeded:
				err = fmt.Errorf("bigquery commit of %d windows did not finish within commit_timeout %s: %w", len(units), s.cfg.CommitTimeout, err)
			case reasonOf(err) == "timeout":
				// BigQuery cancelled a job at its JobTimeout, which is the
				// time the group had left: the same deadline, seen first by
				// the server.
				err = fmt.Errorf("bigquery commit of %d windows did not finish within commit_timeout %s: %w (%w)", len(units), s.cfg.CommitTimeout, err, context.DeadlineExceeded)
			}
		}
		cancel()
		var fe *FencedError
		if !errors.As(err, &fe) {
			for _, r := range group {
				r.done <- err
			}
			return
		}
		var rest []*commitReq
		for _, r := range group {
			if slices.ContainsFunc(r.units, func(u *unit) bool { return u.w.Org == fe.Org }) {
				r.done <- fe
			} else {
				rest = append(rest, r)
			}
		}
		if len(rest) == len(group) {
			for _, r := range group {
				r.done <- err
			}
			return
		}
		group = rest
	}
}

// overlaps reports whether r holds a window already in group, or an org of
// the group under another fence: two units of one (org, window) must never
// share a statement, and an org's fence row takes one value per commit.
func overlaps(group []*commitReq, r *commitReq) bool {
	for _, g := range group {
		for _, a := range g.units {
			for _, b := range r.units {
				if a.w.Org != b.w.Org {
					continue
				}
				if a.w.Start.Before(b.w.End) && b.w.Start.Before(a.w.End) {
					return true
				}
				if (a.fence == nil) != (b.fence == nil) || (a.fence != nil && *a.fence != *b.fence) {
					return true
				}
			}
		}
	}
	return false
}

// FencedError is a commit refused by the fence check: another writer took
// the org's lease since this one opened its units. Nothing of the commit
// was written.
type FencedError struct {
	Org   string
	Owner string // the newer writer, as recorded in the fence table
	Epoch int64  // its lease epoch
	Ours  sinks.Fence
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("bigquery commit for org %s refused: lease lost to %s (epoch %d); this writer holds epoch %d as %s",
		e.Org, e.Owner, e.Epoch, e.Ours.Epoch, e.Ours.Owner)
}

func (e *FencedError) Unwrap() error { return sinks.ErrFenced }

// fenceMarker starts the message the commit's fence check fails with.
const fenceMarker = "vaultsink fence: org "

var reFence = regexp.MustCompile(`vaultsink fence: org (.+?): lease lost to (.*) \(epoch (-?\d+)\)`)

// fenceError recognises the fence check's failure in a job error.
func fenceError(err error, units []*unit) *FencedError {
	if err == nil || !strings.Contains(err.Error(), fenceMarker) {
		return nil
	}
	m := reFence.FindStringSubmatch(err.Error())
	if m == nil {
		return nil
	}
	fe := &FencedError{Org: m[1], Owner: m[2]}
	fe.Epoch, _ = strconv.ParseInt(m[3], 10, 64)
	for _, u := range units {
		if u.w.Org == fe.Org && u.fence != nil {
			fe.Ours = *u.fence
		}
	}
	return fe
}

// commitGroup loads the units into one staging table and adds their new
// rows to the target in one transaction script, then reads what the table
// holds for each unit's window.
func (s *Sink) commitGroup(ctx context.Context, units []*unit, callers int) error {
	start := time.Now()
	if err := s.ensure(ctx); err != nil {
		return err
	}
	sort.Slice(units, func(i, j int) bool {
		if units[i].w.Org != units[j].w.Org {
			return units[i].w.Org < units[j].w.Org
		}
		return units[i].w.Start.Before(units[j].w.Start)
	})
	// The batch id is a function of the windows and of their rows' content
	// (ingested_at aside): a retry of the same batch, or a rerun that pulled
	// the same events, reuses every job id and staging name.
	h := sha256.New()
	var data, quar []*unit
	var rows, qrows int64
	for _, u := range units {
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\x00%s\n", u.w.Org, u.w.Start.UnixMicro(), u.w.End.UnixMicro(), u.sum, u.qsum)
		if u.rows > 0 {
			data = append(data, u)
			rows += u.rows
		}
		if u.qrows > 0 {
			quar = append(quar, u)
			qrows += u.qrows
		}
	}
	id := hex.EncodeToString(h.Sum(nil))[:40]
	log := s.log.With("batch", id, "units", len(units), "callers", callers)

	var stages []string
	stage, qstage := "", ""
	if len(data) > 0 {
		stage = "vaultsink_stage_" + id
		path, cleanup, err := s.mergedData(data)
		if err != nil {
			return err
		}
		err = s.load(ctx, "vaultsink_load_"+id, stage, stagingSchema, path, rows)
		cleanup()
		if err != nil {
			return err
		}
		stages = append(stages, stage)
	}
	if len(quar) > 0 {
		qstage = "vaultsink_stage_" + id + "_q"
		path, cleanup, err := s.mergedQuarantine(quar)
		if err != nil {
			return err
		}
		err = s.load(ctx, "vaultsink_load_"+id+"_q", qstage, quarantineSchema, path, qrows)
		cleanup()
		if err != nil {
			return err
		}
		stages = append(stages, qstage)
	}
	// What the table holds for each window before the commit, and what the
	// commit will add: read first, because a transaction's results cannot
	// tell new rows from held ones. The org's lease keeps other writers of
	// these windows away until the commit (and the fence check refuses the
	// commit of a writer that lost it).
	cq, cparams := s.countSQL(units, stage)
	if err := s.readStats(ctx, cq, cparams, units); err != nil {
		return err
	}
	sqlText, params, err := s.commitSQL(units, stage, qstage)
	if err != nil {
		return err
	}
	jobID := "vaultsink_merge_" + id
	_, err = s.runJob(ctx, "dml", jobID, func(ctx context.Context, jid string) (*bigquery.Job, error) {
		q := s.client.Query(sqlText)
		q.Parameters = params
		q.JobID = jid
		q.AddJobIDSuffix = false
		q.Location = s.loc()
		q.JobTimeout = jobTimeout(ctx)
		q.Labels = s.labels("merge")
		return q.Run(ctx)
	})
	if fe := fenceError(err, units); fe != nil {
		s.m.fenced.Inc()
		log.Warn("commit refused by the fence", "org", fe.Org, "owner", fe.Owner, "epoch", fe.Epoch)
		return fe
	}
	if err != nil {
		return err
	}
	for _, st := range stages {
		if err := s.client.DatasetInProject(s.cfg.Project, s.cfg.StagingDataset).Table(st).Delete(ctx); err != nil && !isNotFound(err) {
			// The staging table expires by itself within a day.
			log.Warn("drop staging table", "table", st, "err", err)
		}
	}
	s.m.groupUnits.Observe(float64(len(units)))
	s.m.rows.Add(float64(rows))
	log.Debug("group committed", "rows", rows, "duration", time.Since(start))
	return nil
}

// readStats reads countSQL's answer: per unit window, the rows the table
// holds, how many the commit adds, and how many held ids the walk did not
// return.
func (s *Sink) readStats(ctx context.Context, sql string, params []bigquery.QueryParameter, units []*unit) error {
	// A read of the table as it is now: a one-off job (a deterministic id
	// would answer a rerun with an earlier, stale count).
	q := s.client.Query(sql)
	q.Parameters = params
	q.Location = s.loc()
	q.JobTimeout = jobTimeout(ctx)
	q.Labels = s.labels("count")
	it, err := q.Read(ctx)
	if err != nil {
		return fmt.Errorf("count what the table holds for %d windows: %w", len(units), classify(err))
	}
	type key struct {
		org string
		ws  int64
	}
	byWindow := map[key]*unit{}
	for _, u := range units {
		byWindow[key{u.w.Org, u.w.Start.UnixMicro()}] = u
	}
	for {
		var row struct {
			Org      string    `bigquery:"org"`
			WS       time.Time `bigquery:"ws"`
			Held     int64     `bigquery:"held"`
			Added    int64     `bigquery:"added"`
			Vanished int64     `bigquery:"vanished"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("count what the table holds for %d windows: %w", len(units), classify(err))
		}
		if u := byWindow[key{row.Org, row.WS.UnixMicro()}]; u != nil {
			u.stats = unitStats{events: row.Held + row.Added, added: row.Added, vanished: row.Vanished}
		}
	}
}

// load creates the staging table (expiring in a day) and loads path into it
// under a deterministic job id. want is the number of rows of path: a job
// found under the id (an earlier run's) may have loaded a staging table
// that expired or was dropped since, so the table is counted, and loaded
// again under a new id when it lacks rows.
func (s *Sink) load(ctx context.Context, jobID, stage string, schema bigquery.Schema, path string, want int64) error {
	t := s.client.DatasetInProject(s.cfg.Project, s.cfg.StagingDataset).Table(stage)
	for reload := 0; ; reload++ {
		md := &bigquery.TableMetadata{Schema: schema, ExpirationTime: time.Now().Add(24 * time.Hour),
			Labels: map[string]string{"vaultsink": "staging"}}
		if err := t.Create(ctx, md); err != nil && !isDuplicate(err) {
			return fmt.Errorf("create staging table %s.%s: %w", s.cfg.StagingDataset, stage, classify(err))
		}
		id := jobID
		if reload > 0 {
			id = fmt.Sprintf("%s_reload_%d", jobID, time.Now().UnixNano())
		}
		_, err := s.runJob(ctx, "load", id, func(ctx context.Context, jid string) (*bigquery.Job, error) {
			f, err := os.Open(path)
			if err != nil {
				return nil, err
			}
			defer f.Close()
			src := bigquery.NewReaderSource(f)
			src.SourceFormat = bigquery.Parquet
			src.Schema = schema
			l := t.LoaderFrom(src)
			l.WriteDisposition = bigquery.WriteTruncate
			l.CreateDisposition = bigquery.CreateIfNeeded
			l.JobID = jid
			l.AddJobIDSuffix = false
			l.Location = s.loc()
			l.JobTimeout = jobTimeout(ctx)
			l.MediaOptions = s.mediaOpts
			l.Labels = s.labels("load")
			return l.Run(ctx)
		})
		if err != nil {
			return err
		}
		got, err := t.Metadata(ctx)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("check staging table %s.%s: %w", s.cfg.StagingDataset, stage, classify(err))
		}
		if err == nil && int64(got.NumRows) == want {
			return nil
		}
		if reload >= 2 {
			return fmt.Errorf("staging table %s.%s holds %d rows after its load, want %d", s.cfg.StagingDataset, stage, numRows(got), want)
		}
		s.log.Info("the staging table of an earlier run's load job is gone; loading again",
			"table", stage, "job", jobID, "rows", numRows(got), "want", want)
	}
}

func numRows(md *bigquery.TableMetadata) uint64 {
	if md == nil {
		return 0
	}
	return md.NumRows
}
