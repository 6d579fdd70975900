package bigquery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
	"github.com/vaultsink/vaultsink/source"
)

var (
	_ sinks.Sink           = (*Sink)(nil)
	_ sinks.BatchCommitter = (*Sink)(nil)
	_ sinks.Reader         = (*Sink)(nil)
	_ sinks.NearDeduper    = (*Sink)(nil)
	_ sinks.FencedUnit     = (*unit)(nil)
)

// Sink writes windows into one BigQuery table. See the package doc.
type Sink struct {
	cfg     Config
	client  *bigquery.Client
	log     *slog.Logger
	version string
	m       *metrics

	// mediaOpts tunes uploads; tests force the resumable path with it.
	mediaOpts []googleapi.MediaOption
	// retryBase is the first pause between attempts of a job, pollBase the
	// first pause between polls of a running job.
	retryBase, pollBase time.Duration
	// tableLabel marks this table's jobs (label vaultsink_table), so that a
	// start finds the jobs an earlier process left running.
	tableLabel string

	ensureMu sync.Mutex
	ensured  bool
	location string // where the datasets are: cfg.Location or read from the dataset

	ctx    context.Context // cancelled by Close; group commits run under it
	cancel context.CancelFunc
	reqs   chan *commitReq
	wg     sync.WaitGroup
	closed sync.Once
}

// New builds a sink from a defaulted, validated cfg. Extra client options
// come after the ones cfg implies.
func New(ctx context.Context, cfg Config, env sinks.Env, opts ...option.ClientOption) (*Sink, error) {
	var co []option.ClientOption
	if cfg.Endpoint != "" {
		co = append(co, option.WithEndpoint(cfg.Endpoint))
	}
	if cfg.WithoutAuthentication {
		co = append(co, option.WithoutAuthentication())
	}
	if cfg.CredentialsFile != "" {
		co = append(co, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsFile))
	}
	co = append(co, opts...)
	if cfg.TempDir != "" {
		// Created here so a missing directory fails at startup, not on the
		// first window.
		if err := os.MkdirAll(cfg.TempDir, 0o700); err != nil {
			return nil, fmt.Errorf("bigquery temp_dir %q: %w: %w", cfg.TempDir, err, sinks.ErrPermanent)
		}
	}
	client, err := bigquery.NewClient(ctx, cfg.Project, co...)
	if err != nil {
		return nil, fmt.Errorf("bigquery client for project %s: %w", cfg.Project, err)
	}
	if cfg.Location != "" {
		client.Location = cfg.Location
	}
	tl := sha256.Sum256([]byte(fmt.Sprintf("%s.%s.%s", cfg.Project, cfg.Dataset, cfg.Table)))
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := env.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		client.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	s := &Sink{
		cfg: cfg, client: client, log: log.With("sink", "bigquery"), version: env.Version, m: m,
		retryBase: time.Second, pollBase: 200 * time.Millisecond, tableLabel: hex.EncodeToString(tl[:8]),
		ctx: sctx, cancel: cancel, reqs: make(chan *commitReq), location: cfg.Location,
	}
	s.wg.Add(1)
	go s.groupLoop()
	return s, nil
}

// Close stops the group committer (commits waiting for it fail) and the client.
func (s *Sink) Close() error {
	var err error
	s.closed.Do(func() {
		s.cancel()
		s.wg.Wait()
		err = s.client.Close()
	})
	return err
}

// MaxBatch is the number of windows of one org the planner may commit together.
func (s *Sink) MaxBatch() int { return s.cfg.MaxBatch }

// Identity is the target table.
func (s *Sink) Identity() string { return "bigquery:" + s.target() }

// DedupsNearWindows: the INSERT itself skips ids the adjacent windows hold.
func (s *Sink) DedupsNearWindows() {}

func (s *Sink) target() string {
	return fmt.Sprintf("%s.%s.%s", s.cfg.Project, s.cfg.Dataset, s.cfg.Table)
}

func (s *Sink) quarantineTable() string { return s.cfg.Table + "_quarantine" }

// fenceTable holds, per org, the lease epoch and owner of the last writer
// that committed to the table (see SetFence).
func (s *Sink) fenceTable() string { return s.cfg.Table + "_fence" }

// ResetFence forgets the org's fence row, for when the org's checkpoint,
// which numbers the lease epochs, was lost or reset: the epochs of new
// leases start again at 1 and a recorded higher epoch would refuse every
// commit. Run it only when no other writer of the org is alive.
func (s *Sink) ResetFence(ctx context.Context, org string) error {
	if err := s.ensure(ctx); err != nil {
		return err
	}
	q := s.client.Query(fmt.Sprintf("DELETE FROM `%s.%s.%s` WHERE org_id = @org", s.cfg.Project, s.cfg.Dataset, s.fenceTable()))
	q.Parameters = []bigquery.QueryParameter{{Name: "org", Value: org}}
	q.Location = s.loc()
	q.Labels = s.labels("fence")
	_, err := s.runJob(ctx, "dml", fmt.Sprintf("vaultsink_fence_reset_%d", time.Now().UnixNano()), func(ctx context.Context, jid string) (*bigquery.Job, error) {
		q.JobID = jid
		q.AddJobIDSuffix = false
		q.JobTimeout = jobTimeout(ctx)
		return q.Run(ctx)
	})
	return err
}

// labels marks a job of this sink: its kind and the table it serves.
func (s *Sink) labels(kind string) map[string]string {
	return map[string]string{"vaultsink": kind, "vaultsink_table": s.tableLabel}
}

// loc is the location every job call carries: the configured one, or the
// dataset's once ensure (or resolveLocation) has read it.
func (s *Sink) loc() string {
	s.ensureMu.Lock()
	defer s.ensureMu.Unlock()
	return s.location
}

// resolveLocation reads the dataset's location when none is configured,
// for reads made before any commit; "" when the dataset does not exist.
func (s *Sink) resolveLocation(ctx context.Context) (string, error) {
	if l := s.loc(); l != "" {
		return l, nil
	}
	md, err := s.client.DatasetInProject(s.cfg.Project, s.cfg.Dataset).Metadata(ctx)
	if err != nil {
		if isNotFound(err) {
			return "", nil
		}
		return "", fmt.Errorf("get dataset %s: %w", s.cfg.Dataset, classify(err))
	}
	s.ensureMu.Lock()
	defer s.ensureMu.Unlock()
	if s.location == "" {
		s.location = md.Location
	}
	return s.location, nil
}

// jobTimeout is the JobTimeout of a job started under ctx: BigQuery itself
// cancels a job that outlives the commit's deadline.
func jobTimeout(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return max(time.Until(dl).Round(time.Second), time.Second)
}

// Open starts a unit: batches stream through the Parquet encoder into a temp
// file, so memory stays bounded by a row group whatever the window's size.
func (s *Sink) Open(ctx context.Context, w source.Window) (sinks.Unit, error) {
	return &unit{s: s, w: w}, nil
}

type unit struct {
	s *Sink
	w source.Window

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
	qbuf    []source.Quarantined
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

func (u *unit) Quarantine(ctx context.Context, q source.Quarantined) error {
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
		if err != nil && ctx.Err() == context.DeadlineExceeded && s.ctx.Err() == nil {
			err = fmt.Errorf("bigquery commit of %d windows did not finish within commit_timeout %s: %w", len(units), s.cfg.CommitTimeout, err)
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
	meta := pqenc.Meta{Window: source.Window{Start: us[0].w.Start, End: us[0].w.End}, Version: s.version}
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
		if err := copyParquet(u.f.Name(), source.Schema, pw.Write); err != nil {
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

// insertColumns are the target's columns in source.Schema order; detail
// and extra are JSON in the target but STRING in staging, because BigQuery
// loads JSON columns only from CSV, Avro and newline-delimited JSON, not
// Parquet.
//
// No value may fail the transaction: the source keeps any JSON it can
// parse, but BigQuery's JSON type refuses nesting deeper than 500 levels
// and numbers out of a DOUBLE's range (1e400), even with wide_number_mode
// 'round'. Such a value is stored as a JSON string holding its text
// (JSON_TYPE(detail) = 'string'), so nothing of it is lost and the rows
// around it commit. A NULL stays NULL (TO_JSON(NULL) would be JSON null).
func insertColumns() (cols, vals string) {
	for i, f := range source.Schema.Fields() {
		if i > 0 {
			cols += ", "
			vals += ", "
		}
		cols += "`" + f.Name + "`"
		if f.Name == "detail" || f.Name == "extra" {
			c := "S.`" + f.Name + "`"
			vals += fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL ELSE COALESCE(SAFE.PARSE_JSON(%[1]s, wide_number_mode => 'round'), TO_JSON(%[1]s)) END", c)
		} else {
			vals += "S.`" + f.Name + "`"
		}
	}
	return cols, vals
}

// MaxQueryParameters is BigQuery's limit of query parameters per job.
const MaxQueryParameters = 10000

// paramsPerSlice is the most parameters one unit adds to the commit script:
// its window (org, start, end and the adjacent windows' bounds: 5) and its
// org's fence (org, epoch, owner: 3). The script adds paramsFixed more.
const paramsPerSlice, paramsFixed = 8, 4

// windowsSQL is a table of the units' windows, each with the adjacent
// windows' bounds (nlo, nhi), and the constant bounds around all of them
// that let BigQuery prune the target's partitions; param adds parameters.
func windowsSQL(units []*unit, param func(string, any) string) (windows, lo, hi string) {
	l, h := units[0].w.Start, units[0].w.End
	var sel []string
	for i, u := range units {
		size := u.w.End.Sub(u.w.Start)
		l = minTime(l, u.w.Start.Add(-size))
		h = maxTime(h, u.w.End.Add(size))
		sel = append(sel, fmt.Sprintf("SELECT %s AS org, %s AS ws, %s AS we, %s AS nlo, %s AS nhi",
			param(fmt.Sprintf("o%d", i), u.w.Org), param(fmt.Sprintf("s%d", i), u.w.Start.UTC()),
			param(fmt.Sprintf("e%d", i), u.w.End.UTC()), param(fmt.Sprintf("l%d", i), u.w.Start.Add(-size).UTC()),
			param(fmt.Sprintf("h%d", i), u.w.End.Add(size).UTC())))
	}
	return "(" + strings.Join(sel, "\n  UNION ALL ") + ")", param("lo", l.UTC()), param("hi", h.UTC())
}

// paramList collects query parameters.
type paramList []bigquery.QueryParameter

func (p *paramList) add(name string, v any) string {
	*p = append(*p, bigquery.QueryParameter{Name: name, Value: v})
	return "@" + name
}

// notHeld is the condition under which a staged row S (joined with its
// window's nlo, nhi) is new: the table holds its id neither in its window
// nor in an adjacent one. The constant bounds lo, hi let BigQuery prune.
func notHeld(target, lo, hi string) string {
	return fmt.Sprintf(`NOT EXISTS (
  SELECT 1 FROM %s AS T
  WHERE T.org_id = S.org_id AND T.event_id = S.event_id
    AND T.`+"`timestamp`"+` >= %s AND T.`+"`timestamp`"+` < %s
    AND T.`+"`timestamp`"+` >= S.nlo AND T.`+"`timestamp`"+` < S.nhi)`, target, lo, hi)
}

// staged selects the staged rows of the units' windows with their
// windows' bounds.
func staged(stage, windows string) string {
	return fmt.Sprintf("(SELECT S.*, U.ws, U.nlo, U.nhi FROM %s AS S JOIN %s AS U\n      ON S.org_id = U.org AND S.`timestamp` >= U.ws AND S.`timestamp` < U.we)", stage, windows)
}

func (s *Sink) stageRef(t string) string {
	return fmt.Sprintf("`%s.%s.%s`", s.cfg.Project, s.cfg.StagingDataset, t)
}

// commitSQL is the commit's transaction script and its parameters. stage
// and qstage name the staging tables of the data and quarantine rows ("":
// none).
//
// The fence comes first: for the orgs whose units carry one, the script
// fails (ERROR, naming the org and the newer owner and epoch) when the
// fence table holds a newer epoch, and otherwise records the units'
// fence, so a writer that lost the lease writes nothing. Then the table only grows: a staged row is inserted
// unless the table already holds its id in its window or an adjacent one
// (the held copy wins, and an id repeated across a boundary is archived
// once), so a re-pull that returns less never removes a row and a rerun
// adds nothing twice. The quarantine of every unit's window is replaced (a
// unit that quarantined nothing clears it).
//
// Every read of the target and every DELETE is bounded by constant
// timestamps (@lo, @hi; @qlo, @qhi) around all the units' windows, so
// BigQuery prunes partitions instead of scanning the table.
func (s *Sink) commitSQL(units []*unit, stage, qstage string) (string, []bigquery.QueryParameter, error) {
	var params paramList
	windows, lo, hi := windowsSQL(units, params.add)
	target := "`" + s.target() + "`"
	qt := fmt.Sprintf("`%s.%s.%s`", s.cfg.Project, s.cfg.Dataset, s.quarantineTable())
	stmts := []string{"BEGIN TRANSACTION"}
	var fences []string
	seen := map[string]bool{}
	for _, u := range units {
		if u.fence == nil || seen[u.w.Org] {
			continue
		}
		seen[u.w.Org] = true
		i := len(fences)
		fences = append(fences, fmt.Sprintf("SELECT %s AS org, %s AS epoch, %s AS owner",
			params.add(fmt.Sprintf("fo%d", i), u.w.Org), params.add(fmt.Sprintf("fe%d", i), u.fence.Epoch), params.add(fmt.Sprintf("fw%d", i), u.fence.Owner)))
	}
	if len(fences) > 0 {
		ft := fmt.Sprintf("`%s.%s.%s`", s.cfg.Project, s.cfg.Dataset, s.fenceTable())
		w := "(" + strings.Join(fences, "\n  UNION ALL ") + ")"
		stmts = append(stmts,
			fmt.Sprintf("SELECT ERROR(FORMAT('%s%%s: lease lost to %%s (epoch %%d)', F.org_id, IFNULL(F.owner, ''), F.epoch))\nFROM %s AS F JOIN %s AS W ON F.org_id = W.org\nWHERE F.epoch > W.epoch",
				fenceMarker, ft, w),
			fmt.Sprintf("MERGE %s AS F\nUSING %s AS W ON F.org_id = W.org\nWHEN MATCHED THEN UPDATE SET epoch = W.epoch, owner = W.owner, updated_at = CURRENT_TIMESTAMP()\nWHEN NOT MATCHED THEN INSERT (org_id, epoch, owner, updated_at) VALUES (W.org, W.epoch, W.owner, CURRENT_TIMESTAMP())",
				ft, w))
	}
	if stage != "" {
		cols, vals := insertColumns()
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s\nFROM %s AS S\nWHERE %s\nQUALIFY ROW_NUMBER() OVER (PARTITION BY S.org_id, S.event_id ORDER BY S.`timestamp`, S.ingested_at) = 1",
			target, cols, vals, staged(s.stageRef(stage), windows), notHeld(target, lo, hi)))
	}
	var qpred []string
	qlo, qhi := units[0].w.Start, units[0].w.Start
	for i, u := range units {
		qpred = append(qpred, fmt.Sprintf("(org_id = @o%d AND window_start = @s%d)", i, i))
		qlo, qhi = minTime(qlo, u.w.Start), maxTime(qhi, u.w.Start)
	}
	stmts = append(stmts, fmt.Sprintf("DELETE FROM %s\nWHERE window_start >= %s AND window_start <= %s\n  AND (%s)",
		qt, params.add("qlo", qlo.UTC()), params.add("qhi", qhi.UTC()), strings.Join(qpred, "\n   OR ")))
	if qstage != "" {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (org_id, window_start, window_end, page, reason, raw)\nSELECT org_id, window_start, window_end, page, reason, raw FROM %s",
			qt, s.stageRef(qstage)))
	}
	stmts = append(stmts, "COMMIT TRANSACTION")
	if len(params) > MaxQueryParameters {
		return "", nil, fmt.Errorf("bigquery commit of %d windows needs %d query parameters, over BigQuery's %d (lower max_group_slices): %w",
			len(units), len(params), MaxQueryParameters, sinks.ErrPermanent)
	}
	return strings.Join(stmts, ";\n"), params, nil
}

// countSQL counts, per unit window, the rows the table holds (held), those
// whose id the staged rows (the walk's answer) do not repeat (vanished),
// and the staged rows the commit will add (added).
func (s *Sink) countSQL(units []*unit, stage string) (string, []bigquery.QueryParameter) {
	var params paramList
	windows, lo, hi := windowsSQL(units, params.add)
	target := "`" + s.target() + "`"
	rows := "(SELECT CAST(NULL AS STRING) AS org_id, CAST(NULL AS STRING) AS event_id, CAST(NULL AS TIMESTAMP) AS `timestamp` LIMIT 0)"
	if stage != "" {
		rows = "(SELECT org_id, event_id, `timestamp` FROM " + s.stageRef(stage) + ")"
	}
	q := fmt.Sprintf(`SELECT U.org, U.ws, IFNULL(H.held, 0) AS held, IFNULL(H.vanished, 0) AS vanished, IFNULL(N.added, 0) AS added
FROM %[1]s AS U
LEFT JOIN (
  SELECT org, ws, COUNT(*) AS held, COUNTIF(NOT returned) AS vanished
  FROM (
    SELECT U.org, U.ws, T.event_id, LOGICAL_OR(S.event_id IS NOT NULL) AS returned
    FROM %[1]s AS U
    JOIN %[2]s AS T ON T.org_id = U.org AND T.`+"`timestamp`"+` >= U.ws AND T.`+"`timestamp`"+` < U.we
    LEFT JOIN %[3]s AS S ON S.org_id = T.org_id AND S.event_id = T.event_id
    WHERE T.`+"`timestamp`"+` >= %[4]s AND T.`+"`timestamp`"+` < %[5]s
    GROUP BY U.org, U.ws, T.event_id)
  GROUP BY org, ws
) AS H ON H.org = U.org AND H.ws = U.ws
LEFT JOIN (
  SELECT S.org_id AS org, S.ws, COUNT(DISTINCT S.event_id) AS added
  FROM %[6]s AS S
  WHERE %[7]s
  GROUP BY S.org_id, S.ws
) AS N ON N.org = U.org AND N.ws = U.ws`, windows, target, rows, lo, hi, staged(rows, windows), notHeld(target, lo, hi))
	return q, params
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Quarantine records go to <table>_quarantine, replaced per window like data.
var quarantineArrow = arrow.NewSchema([]arrow.Field{
	{Name: "org_id", Type: arrow.BinaryTypes.String},
	{Name: "window_start", Type: source.TimestampType},
	{Name: "window_end", Type: source.TimestampType},
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
