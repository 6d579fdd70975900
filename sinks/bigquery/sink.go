package bigquery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/source"
)

var (
	_ sinks.Sink           = (*Sink)(nil)
	_ sinks.BatchCommitter = (*Sink)(nil)
	_ sinks.Reader         = (*Sink)(nil)
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
	// retryBase is the first pause between attempts of a job.
	retryBase time.Duration

	ensureMu sync.Mutex
	ensured  bool

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
		retryBase: time.Second, ctx: sctx, cancel: cancel, reqs: make(chan *commitReq),
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

func (s *Sink) target() string {
	return fmt.Sprintf("%s.%s.%s", s.cfg.Project, s.cfg.Dataset, s.cfg.Table)
}

func (s *Sink) quarantineTable() string { return s.cfg.Table + "_quarantine" }

// Open starts a unit: batches stream through the Parquet encoder into a temp
// file, so memory stays bounded by a row group whatever the window's size.
func (s *Sink) Open(ctx context.Context, w source.Window) (sinks.Unit, error) {
	return &unit{s: s, w: w}, nil
}

type unit struct {
	s *Sink
	w source.Window

	f    *os.File
	h    hash.Hash
	pw   *pqenc.Writer
	rows int64
	size int64
	sum  string

	qf    *os.File
	qh    hash.Hash
	qw    *pqarrow.FileWriter
	qrows int64
	qsum  string
	qbuf  []source.Quarantined

	finished, done bool
}

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
		u.f, u.h = f, sha256.New()
		pw, err := pqenc.NewWriter(io.MultiWriter(f, u.h), pqenc.Meta{Window: u.w, Version: u.s.version}, u.s.cfg.Options)
		if err != nil {
			u.cleanup()
			return fmt.Errorf("parquet writer for %s: %w", u.w, err)
		}
		u.pw = pw
	}
	if err := u.pw.Write(rec); err != nil {
		return fmt.Errorf("encode batch of %s: %w", u.w, err)
	}
	u.rows += rec.NumRows()
	return nil
}

func (u *unit) Quarantine(ctx context.Context, q source.Quarantined) error {
	if u.done || u.finished {
		return errors.New("bigquery unit: quarantine after commit or abort")
	}
	u.qbuf = append(u.qbuf, q)
	u.qrows++
	if len(u.qbuf) >= 1024 {
		return u.flushQuarantine()
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
		u.sum = hex.EncodeToString(u.h.Sum(nil))
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
		u.qsum = hex.EncodeToString(u.qh.Sum(nil))
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
	r := sinks.Result{Events: u.rows, Quarantined: u.qrows, Bytes: u.size}
	if u.rows > 0 {
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
	var work []*unit
	for _, u := range us {
		if u.rows > 0 || u.qrows > 0 {
			work = append(work, u)
		}
	}
	if len(work) > 0 {
		req := &commitReq{units: work, done: make(chan error, 1)}
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

// commitReq is one caller's units waiting for a group commit.
type commitReq struct {
	units []*unit
	done  chan error
}

func (r *commitReq) slices() int { return len(r.units) }

// groupLoop merges commits that arrive while a group is gathered or running
// into the next group: one load and one DML for all of them. Only one group
// runs at a time, so this process never queues DML on the table behind
// itself (BigQuery runs 2 mutating DML per table and queues 20).
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
		var units []*unit
		for _, r := range group {
			units = append(units, r.units...)
		}
		err := s.commitGroup(s.ctx, units, len(group))
		for _, r := range group {
			r.done <- err
		}
	}
}

// overlaps reports whether r holds a window already in group: two units of
// one (org, window) must never share a statement.
func overlaps(group []*commitReq, r *commitReq) bool {
	for _, g := range group {
		for _, a := range g.units {
			for _, b := range r.units {
				if a.w.Org == b.w.Org && a.w.Start.Before(b.w.End) && b.w.Start.Before(a.w.End) {
					return true
				}
			}
		}
	}
	return false
}

// commitGroup loads the units into one staging table and replaces their
// slices of the target with one DML statement.
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
	// The batch id is a pure function of the windows and their bytes: a retry
	// of the same batch reuses every job id and staging name.
	h := sha256.New()
	var data, quar []*unit
	var rows int64
	for _, u := range units {
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00%s\x00%s\n", u.w.Org, u.w.Start.UnixMicro(), u.w.End.UnixMicro(), u.sum, u.qsum)
		if u.rows > 0 {
			data = append(data, u)
			rows += u.rows
		}
		if u.qrows > 0 {
			quar = append(quar, u)
		}
	}
	id := hex.EncodeToString(h.Sum(nil))[:40]
	log := s.log.With("batch", id, "units", len(units), "callers", callers)

	var stmts []string
	var params []bigquery.QueryParameter
	var stages []string
	if len(data) > 0 {
		stage := "vaultsink_stage_" + id
		path, cleanup, err := s.mergedData(data)
		if err != nil {
			return err
		}
		err = s.load(ctx, "vaultsink_load_"+id, stage, stagingSchema, path)
		cleanup()
		if err != nil {
			return err
		}
		stages = append(stages, stage)
		q, p := s.replaceSQL(stage, data)
		stmts, params = append(stmts, q...), append(params, p...)
	}
	if len(quar) > 0 {
		stage := "vaultsink_stage_" + id + "_q"
		path, cleanup, err := s.mergedQuarantine(quar)
		if err != nil {
			return err
		}
		err = s.load(ctx, "vaultsink_load_"+id+"_q", stage, quarantineSchema, path)
		cleanup()
		if err != nil {
			return err
		}
		stages = append(stages, stage)
		q, p := s.quarantineSQL(stage, quar)
		stmts, params = append(stmts, q...), append(params, p...)
	}
	sqlText := "BEGIN TRANSACTION;\n" + strings.Join(stmts, ";\n") + ";\nCOMMIT TRANSACTION"
	jobID := "vaultsink_merge_" + id
	err := s.runJob(ctx, "dml", jobID, func(ctx context.Context, jid string) (*bigquery.Job, error) {
		q := s.client.Query(sqlText)
		q.Parameters = params
		q.JobID = jid
		q.AddJobIDSuffix = false
		q.Location = s.cfg.Location
		q.Labels = map[string]string{"vaultsink": "merge"}
		return q.Run(ctx)
	})
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

// load creates the staging table (expiring in a day) and loads path into it
// under a deterministic job id.
func (s *Sink) load(ctx context.Context, jobID, stage string, schema bigquery.Schema, path string) error {
	t := s.client.DatasetInProject(s.cfg.Project, s.cfg.StagingDataset).Table(stage)
	md := &bigquery.TableMetadata{Schema: schema, ExpirationTime: time.Now().Add(24 * time.Hour),
		Labels: map[string]string{"vaultsink": "staging"}}
	if err := t.Create(ctx, md); err != nil && !isDuplicate(err) {
		return fmt.Errorf("create staging table %s.%s: %w", s.cfg.StagingDataset, stage, classify(err))
	}
	return s.runJob(ctx, "load", jobID, func(ctx context.Context, jid string) (*bigquery.Job, error) {
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
		l.Location = s.cfg.Location
		l.MediaOptions = s.mediaOpts
		l.Labels = map[string]string{"vaultsink": "load"}
		return l.Run(ctx)
	})
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

// copyParquet streams the row batches of the Parquet file at path, relabelled
// with schema (the reader adds field-id metadata the writers do not want),
// into write, a batch at a time.
func copyParquet(path string, schema *arrow.Schema, write func(arrow.RecordBatch) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pr, err := file.NewParquetReader(f)
	if err != nil {
		return err
	}
	defer pr.Close()
	fr, err := pqarrow.NewFileReader(pr, pqarrow.ArrowReadProperties{BatchSize: 8192}, memory.DefaultAllocator)
	if err != nil {
		return err
	}
	rr, err := fr.GetRecordReader(context.Background(), nil, nil)
	if err != nil {
		return err
	}
	defer rr.Release()
	for rr.Next() {
		rb := rr.RecordBatch()
		rec := array.NewRecordBatch(schema, rb.Columns(), rb.NumRows())
		err := write(rec)
		rec.Release()
		if err != nil {
			return err
		}
	}
	if err := rr.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// dataColumns are the target's columns in source.Schema order; detail and
// extra are JSON in the target but STRING in staging, because BigQuery loads
// JSON columns only from CSV, Avro and newline-delimited JSON, not Parquet.
func insertColumns() (cols, vals string) {
	for i, f := range source.Schema.Fields() {
		if i > 0 {
			cols += ", "
			vals += ", "
		}
		cols += "`" + f.Name + "`"
		if f.Name == "detail" || f.Name == "extra" {
			vals += "PARSE_JSON(S.`" + f.Name + "`, wide_number_mode => 'round')"
		} else {
			vals += "S.`" + f.Name + "`"
		}
	}
	return cols, vals
}

// span is a run of contiguous non-empty windows of one org: one predicate.
type span struct {
	org        string
	start, end time.Time
}

func spans(us []*unit) []span {
	var out []span
	for _, u := range us { // sorted by org, start
		if n := len(out); n > 0 && out[n-1].org == u.w.Org && out[n-1].end.Equal(u.w.Start) {
			out[n-1].end = u.w.End
			continue
		}
		out = append(out, span{u.w.Org, u.w.Start, u.w.End})
	}
	return out
}

// replaceSQL deletes every unit's (org, window) slice of the target and
// inserts the staged rows (one per event id). It runs inside the commit's
// transaction script, so readers see the old slice or the new one, never a
// mix. Empty units are not in us, so they delete nothing.
func (s *Sink) replaceSQL(stage string, us []*unit) ([]string, []bigquery.QueryParameter) {
	var pred string
	var params []bigquery.QueryParameter
	for i, sp := range spans(us) {
		if i > 0 {
			pred += "\n   OR "
		}
		pred += fmt.Sprintf("(org_id = @o%d AND `timestamp` >= @s%d AND `timestamp` < @e%d)", i, i, i)
		params = append(params,
			bigquery.QueryParameter{Name: fmt.Sprintf("o%d", i), Value: sp.org},
			bigquery.QueryParameter{Name: fmt.Sprintf("s%d", i), Value: sp.start.UTC()},
			bigquery.QueryParameter{Name: fmt.Sprintf("e%d", i), Value: sp.end.UTC()})
	}
	cols, vals := insertColumns()
	del := fmt.Sprintf("DELETE FROM `%s`\nWHERE %s", s.target(), pred)
	ins := fmt.Sprintf("INSERT INTO `%s` (%s)\nSELECT %s\nFROM `%s.%s.%s` AS S\nWHERE TRUE\nQUALIFY ROW_NUMBER() OVER (PARTITION BY S.org_id, S.event_id ORDER BY S.`timestamp`, S.ingested_at) = 1",
		s.target(), cols, vals, s.cfg.Project, s.cfg.StagingDataset, stage)
	return []string{del, ins}, params
}

// quarantineSQL replaces the quarantine rows of the units' windows.
func (s *Sink) quarantineSQL(stage string, us []*unit) ([]string, []bigquery.QueryParameter) {
	var pred string
	var params []bigquery.QueryParameter
	for i, u := range us {
		if i > 0 {
			pred += "\n   OR "
		}
		pred += fmt.Sprintf("(org_id = @qo%d AND window_start = @qs%d)", i, i)
		params = append(params,
			bigquery.QueryParameter{Name: fmt.Sprintf("qo%d", i), Value: u.w.Org},
			bigquery.QueryParameter{Name: fmt.Sprintf("qs%d", i), Value: u.w.Start.UTC()})
	}
	qt := fmt.Sprintf("%s.%s.%s", s.cfg.Project, s.cfg.Dataset, s.quarantineTable())
	del := fmt.Sprintf("DELETE FROM `%s`\nWHERE %s", qt, pred)
	ins := fmt.Sprintf("INSERT INTO `%s` (org_id, window_start, window_end, page, reason, raw)\nSELECT org_id, window_start, window_end, page, reason, raw FROM `%s.%s.%s`",
		qt, s.cfg.Project, s.cfg.StagingDataset, stage)
	return []string{del, ins}, params
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
		u.qf, u.qh = f, sha256.New()
		props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd))
		qw, err := pqarrow.NewFileWriter(quarantineArrow, io.MultiWriter(f, u.qh), props,
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
	u.qbuf = u.qbuf[:0]
	if err := u.qw.WriteBuffered(rec); err != nil {
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
		if err := copyParquet(u.qf.Name(), quarantineArrow, qw.WriteBuffered); err != nil {
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
