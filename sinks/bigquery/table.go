package bigquery

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/bigquery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"

	"github.com/vaultsink/vaultsink/sinks"
)

// targetSchema is event.Schema as a BigQuery table.
var targetSchema = bigquery.Schema{
	{Name: "event_id", Type: bigquery.StringFieldType, Required: true},
	{Name: "org_id", Type: bigquery.StringFieldType, Required: true},
	{Name: "timestamp", Type: bigquery.TimestampFieldType, Required: true},
	{Name: "action", Type: bigquery.StringFieldType},
	{Name: "category", Type: bigquery.StringFieldType},
	{Name: "severity", Type: bigquery.StringFieldType},
	{Name: "title", Type: bigquery.StringFieldType},
	{Name: "actor", Type: bigquery.StringFieldType},
	{Name: "resource", Type: bigquery.StringFieldType},
	{Name: "source_ip", Type: bigquery.StringFieldType},
	{Name: "detail", Type: bigquery.JSONFieldType, Description: "event detail as JSON"},
	{Name: "extra", Type: bigquery.JSONFieldType, Description: "fields the schema does not know, as a JSON object"},
	{Name: "ingested_at", Type: bigquery.TimestampFieldType, Required: true},
}

// stagingSchema is what the Parquet loads as: JSON columns stay STRING.
var stagingSchema = func() bigquery.Schema {
	var out bigquery.Schema
	for _, f := range targetSchema {
		c := *f
		if c.Type == bigquery.JSONFieldType {
			c.Type = bigquery.StringFieldType
		}
		out = append(out, &c)
	}
	return out
}()

// fenceSchema is <table>_fence: one row per org, the lease of the last
// writer that committed the org's rows (see unit.SetFence).
var fenceSchema = bigquery.Schema{
	{Name: "org_id", Type: bigquery.StringFieldType, Required: true},
	{Name: "epoch", Type: bigquery.IntegerFieldType, Required: true},
	{Name: "owner", Type: bigquery.StringFieldType},
	{Name: "updated_at", Type: bigquery.TimestampFieldType},
}

var quarantineSchema = bigquery.Schema{
	{Name: "org_id", Type: bigquery.StringFieldType, Required: true},
	{Name: "window_start", Type: bigquery.TimestampFieldType, Required: true},
	{Name: "window_end", Type: bigquery.TimestampFieldType, Required: true},
	{Name: "page", Type: bigquery.IntegerFieldType, Required: true},
	{Name: "reason", Type: bigquery.StringFieldType},
	{Name: "raw", Type: bigquery.StringFieldType},
}

// ensure creates the datasets and tables if missing and checks an existing
// target: columns it lacks are added (NULLABLE), a conflicting column is a
// permanent error. The datasets' location is checked (or, with no location
// configured, read from the dataset): the target and staging datasets must
// be in one location, the configured one. Then it waits for the jobs an
// earlier process left running on the table. It succeeds once per sink.
func (s *Sink) ensure(ctx context.Context) error {
	s.ensureMu.Lock()
	defer s.ensureMu.Unlock()
	if s.ensured {
		return nil
	}
	locs := map[string]string{}
	for _, ds := range []string{s.cfg.Dataset, s.cfg.StagingDataset} {
		if _, done := locs[ds]; done {
			continue
		}
		d := s.client.DatasetInProject(s.cfg.Project, ds)
		md, err := d.Metadata(ctx)
		if err != nil && !isNotFound(err) {
			return fmt.Errorf("get dataset %s: %w", ds, classify(err))
		}
		if err == nil {
			if s.cfg.Location != "" && !strings.EqualFold(md.Location, s.cfg.Location) {
				return fmt.Errorf("bigquery location: %q is configured but dataset %s.%s is in %s: set location to %s (a dataset cannot move): %w",
					s.cfg.Location, s.cfg.Project, ds, md.Location, md.Location, sinks.ErrPermanent)
			}
			locs[ds] = md.Location
			continue
		}
		if s.cfg.Location == "" {
			return fmt.Errorf("bigquery location: required: dataset %s.%s does not exist and vaultsink creates it in the configured location (e.g. US, EU, europe-west1): %w",
				s.cfg.Project, ds, sinks.ErrPermanent)
		}
		if err := d.Create(ctx, &bigquery.DatasetMetadata{Location: s.cfg.Location}); err != nil && !isDuplicate(err) {
			return fmt.Errorf("create dataset %s in %s: %w", ds, s.cfg.Location, classify(err))
		}
		s.log.Info("created dataset", "dataset", ds, "location", s.cfg.Location)
		locs[ds] = s.cfg.Location
	}
	if a, b := locs[s.cfg.Dataset], locs[s.cfg.StagingDataset]; !strings.EqualFold(a, b) {
		return fmt.Errorf("bigquery staging_dataset: %s is in %s but dataset %s is in %s; a query cannot read across locations: use a staging dataset in %s: %w",
			s.cfg.StagingDataset, b, s.cfg.Dataset, a, a, sinks.ErrPermanent)
	}
	s.location = locs[s.cfg.Dataset]
	tables := []struct {
		name   string
		schema bigquery.Schema
		field  string
		clust  []string
	}{
		{s.cfg.Table, targetSchema, "timestamp", []string{"org_id", "action"}},
		{s.quarantineTable(), quarantineSchema, "window_start", []string{"org_id"}},
		{s.fenceTable(), fenceSchema, "", []string{"org_id"}},
	}
	for _, tb := range tables {
		if err := s.ensureTable(ctx, tb.name, tb.schema, tb.field, tb.clust); err != nil {
			return err
		}
	}
	s.awaitEarlierJobs(ctx)
	s.ensured = true
	return nil
}

// awaitEarlierJobs waits for this table's jobs that are still running (a
// killed process's load or transaction): a transaction of ours started
// beside one of them would only be cancelled. Listing needs
// bigquery.jobs.list; without it (or past the commit's deadline) the
// commit goes on, and a conflict is retried.
func (s *Sink) awaitEarlierJobs(ctx context.Context) {
	var waiting []*bigquery.Job
	for _, state := range []bigquery.State{bigquery.Running, bigquery.Pending} {
		it := s.client.Jobs(ctx)
		it.State = state
		it.MinCreationTime = time.Now().Add(-7 * 24 * time.Hour)
		for {
			j, err := it.Next()
			if errors.Is(err, iterator.Done) {
				break
			}
			if err != nil {
				s.log.Warn("cannot list running jobs (needs bigquery.jobs.list); not waiting for an earlier process's jobs", "err", err)
				return
			}
			if jobLabels(j)["vaultsink_table"] == s.tableLabel {
				waiting = append(waiting, j)
			}
		}
	}
	for _, j := range waiting {
		s.log.Info("waiting for a job an earlier run left running on the table", "job", j.ID(), "location", j.Location())
		if _, err := waitJob(ctx, j, s.pollBase); err != nil {
			s.log.Warn("stopped waiting for an earlier run's job", "job", j.ID(), "err", err)
			return
		}
	}
}

func jobLabels(j *bigquery.Job) map[string]string {
	cfg, err := j.Config()
	if err != nil {
		return nil
	}
	switch c := cfg.(type) {
	case *bigquery.QueryConfig:
		return c.Labels
	case *bigquery.LoadConfig:
		return c.Labels
	}
	return nil
}

func (s *Sink) ensureTable(ctx context.Context, name string, schema bigquery.Schema, partField string, clustering []string) error {
	t := s.client.DatasetInProject(s.cfg.Project, s.cfg.Dataset).Table(name)
	md, err := t.Metadata(ctx)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("get table %s.%s: %w", s.cfg.Dataset, name, classify(err))
	}
	if err != nil {
		nm := &bigquery.TableMetadata{Schema: schema, Clustering: &bigquery.Clustering{Fields: clustering},
			Description: s.cfg.Description, Labels: s.cfg.Labels}
		if partField != "" {
			nm.TimePartitioning = &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: partField, Expiration: s.cfg.PartitionExpiration}
		}
		if err := t.Create(ctx, nm); err != nil && !isDuplicate(err) {
			return fmt.Errorf("create table %s.%s: %w", s.cfg.Dataset, name, classify(err))
		}
		s.log.Info("created table", "table", s.cfg.Dataset+"."+name)
		return nil
	}
	missing, err := compareSchema(md.Schema, schema)
	if err != nil {
		return fmt.Errorf("table %s.%s.%s has an incompatible schema: %v; fix or rename the table (vaultsink never alters existing columns): %w",
			s.cfg.Project, s.cfg.Dataset, name, err, sinks.ErrPermanent)
	}
	if tp := md.TimePartitioning; partField != "" && (tp == nil || tp.Field != partField) {
		s.log.Warn("table is not partitioned on "+partField+"; every replace scans the whole table", "table", s.cfg.Dataset+"."+name)
	}
	if len(missing) == 0 {
		return nil
	}
	upd := bigquery.TableMetadataToUpdate{Schema: append(md.Schema, missing...)}
	if _, err := t.Update(ctx, upd, md.ETag); err != nil {
		return fmt.Errorf("add columns to %s.%s: %w", s.cfg.Dataset, name, classify(err))
	}
	s.log.Info("added columns", "table", s.cfg.Dataset+"."+name, "columns", len(missing))
	return nil
}

// compareSchema checks that rows in want can go into a table of schema have
// and returns the columns to add (as NULLABLE: BigQuery cannot add REQUIRED
// columns to a table with rows).
func compareSchema(have, want bigquery.Schema) (bigquery.Schema, error) {
	byName := map[string]*bigquery.FieldSchema{}
	for _, f := range have {
		byName[strings.ToLower(f.Name)] = f
	}
	known := map[string]bool{}
	var missing bigquery.Schema
	var problems []string
	for _, w := range want {
		known[strings.ToLower(w.Name)] = true
		h, ok := byName[strings.ToLower(w.Name)]
		if !ok {
			c := *w
			c.Required = false
			missing = append(missing, &c)
			continue
		}
		if h.Type != w.Type || h.Repeated {
			problems = append(problems, fmt.Sprintf("column %s is %s%s, want %s", w.Name, repeated(h), h.Type, w.Type))
		} else if h.Required && !w.Required {
			problems = append(problems, fmt.Sprintf("column %s is REQUIRED but vaultsink may write NULL", w.Name))
		}
	}
	for _, h := range have {
		if h.Required && !known[strings.ToLower(h.Name)] {
			problems = append(problems, fmt.Sprintf("column %s is REQUIRED and unknown to vaultsink", h.Name))
		}
	}
	if len(problems) > 0 {
		return nil, errors.New(strings.Join(problems, "; "))
	}
	return missing, nil
}

func repeated(f *bigquery.FieldSchema) string {
	if f.Repeated {
		return "REPEATED "
	}
	return ""
}

// runJob starts a job under a deterministic id and waits for it. The client
// does not retry jobs.insert with media, so start is called again with the
// same id (and a fresh reader). A 409 means an earlier attempt exists: that
// job is fetched (with the location: outside the US and EU multi-regions a
// job is found only with it) and waited for, and its success is ours. A
// job that failed for a transient reason cannot be rerun under its id, so
// the next attempt takes the next id of a fixed sequence (id_r1, id_r2,
// ...). A failed job found under an id (a 409 from an earlier run that
// failed, for any reason) belongs to that earlier attempt: the walk moves
// on to the next id without counting it, or a window whose job once failed
// permanently (a schema error since fixed) could never be written again
// while BigQuery remembers the id.
//
// A transaction cancelled by a concurrent update of the table (another
// process's commit, an analyst's DML) is expected: it is retried under the
// next id after a jittered pause, up to maxConflicts times within the
// commit's deadline, and counted in vaultsink_bigquery_conflicts_total.
func (s *Sink) runJob(ctx context.Context, kind, base string, start func(ctx context.Context, id string) (*bigquery.Job, error)) (*bigquery.Job, error) {
	const maxAttempts, maxSuffix, maxConflicts = 6, 100, 10
	id, suffix, conflicts := base, 0, 0
	pause := s.retryBase
	began := time.Now()
	outcome := "error"
	defer func() {
		s.m.jobs.WithLabelValues(kind, outcome).Inc()
		s.m.jobSeconds.WithLabelValues(kind).Observe(time.Since(began).Seconds())
	}()
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for attempt := 1; ; attempt++ {
		retry := func() error {
			if attempt >= maxAttempts {
				return fmt.Errorf("gave up after %d attempts", attempt)
			}
			d := pause + time.Duration(rand.Int64N(int64(pause)/2+1))
			pause = min(pause*2, 30*time.Second)
			return sleep(d)
		}
		job, err := start(ctx, id)
		earlier := isDuplicate(err)
		if earlier {
			s.log.Info("job exists from an earlier attempt; waiting for it", "job", id)
			job, err = s.client.JobFromIDLocation(ctx, id, s.loc())
		}
		if err == nil {
			var st *bigquery.JobStatus
			st, err = waitJob(ctx, job, s.pollBase)
			if err == nil {
				jerr := st.Err()
				if jerr == nil {
					outcome = "ok"
					return job, nil
				}
				if earlier && suffix < maxSuffix {
					s.log.Warn("an earlier attempt's job failed; trying the next id", "job", id, "err", jerr)
					suffix++
					id = fmt.Sprintf("%s_r%d", base, suffix)
					attempt--
					continue
				}
				if isConflict(jerr) && suffix < maxSuffix {
					s.m.conflicts.Inc()
					conflicts++
					if conflicts > maxConflicts {
						return nil, jobError(kind, id, fmt.Errorf("cancelled by concurrent updates %d times: %w", conflicts, jerr))
					}
					// Full jitter: writers that collided do not collide again
					// in step.
					d := s.retryBase/4 + time.Duration(rand.Int64N(int64(min(s.retryBase<<conflicts, 30*time.Second))))
					s.log.Warn("transaction cancelled by a concurrent update of the table; retrying under the next id", "job", id, "conflicts", conflicts, "pause", d)
					if err := sleep(d); err != nil {
						return nil, jobError(kind, id, jerr)
					}
					suffix++
					id = fmt.Sprintf("%s_r%d", base, suffix)
					attempt--
					continue
				}
				if !retryable(jerr) || suffix >= maxSuffix {
					return nil, jobError(kind, id, jerr)
				}
				s.log.Warn("job failed; retrying under the next id", "job", id, "err", jerr)
				if rerr := retry(); rerr != nil {
					return nil, jobError(kind, id, jerr)
				}
				suffix++
				id = fmt.Sprintf("%s_r%d", base, suffix)
				continue
			}
		}
		if !retryable(err) {
			return nil, jobError(kind, id, err)
		}
		s.log.Warn("job request failed; retrying", "job", id, "err", err)
		if rerr := retry(); rerr != nil {
			return nil, jobError(kind, id, err)
		}
	}
}

// waitJob polls job until it is done or ctx ends (the commit's deadline).
func waitJob(ctx context.Context, job *bigquery.Job, pause time.Duration) (*bigquery.JobStatus, error) {
	if st := job.LastStatus(); st != nil && st.Done() {
		return st, nil
	}
	for {
		st, err := job.Status(ctx)
		if err != nil {
			return nil, err
		}
		if st.Done() {
			return st, nil
		}
		select {
		case <-time.After(pause):
		case <-ctx.Done():
			return nil, fmt.Errorf("job %s still %s: %w", job.ID(), stateName(st.State), ctx.Err())
		}
		pause = min(pause*3/2, 5*time.Second)
	}
}

func stateName(st bigquery.State) string {
	switch st {
	case bigquery.Pending:
		return "pending"
	case bigquery.Running:
		return "running"
	}
	return "done"
}

// isConflict reports a transaction (or DML statement) that BigQuery
// cancelled because another one changed the same table ("Transaction is
// aborted due to concurrent update against table ...", "Could not
// serialize access to table ... due to concurrent update"): retryable under
// a new job id whatever its reason says.
func isConflict(err error) bool {
	return err != nil && strings.Contains(err.Error(), "due to concurrent update")
}

// JobError is a failed BigQuery job or request: it names the job and
// BigQuery's reason.
type JobError struct {
	Kind   string // load or dml
	JobID  string
	Reason string // BigQuery's reason, e.g. invalidQuery, backendError
	Err    error
}

func (e *JobError) Error() string {
	return fmt.Sprintf("bigquery %s job %s failed: reason %s: %v", e.Kind, e.JobID, e.Reason, e.Err)
}

func (e *JobError) Unwrap() []error {
	if permanentReason(e.Reason) {
		return []error{e.Err, sinks.ErrPermanent}
	}
	return []error{e.Err}
}

func jobError(kind, id string, err error) error {
	return &JobError{Kind: kind, JobID: id, Reason: reasonOf(err), Err: err}
}

func reasonOf(err error) string {
	var be *bigquery.Error
	if errors.As(err, &be) {
		return be.Reason
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		if len(ge.Errors) > 0 {
			return ge.Errors[0].Reason
		}
		return fmt.Sprintf("http %d", ge.Code)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "canceled"
	}
	return "transport"
}

func permanentReason(r string) bool {
	switch r {
	case "invalid", "invalidQuery", "accessDenied", "billingNotEnabled", "resourcesExceeded":
		return true
	}
	return false
}

// classify marks request errors that retrying cannot fix as permanent.
func classify(err error) error {
	if permanentReason(reasonOf(err)) && !isNotFound(err) {
		return fmt.Errorf("%w (%w)", err, sinks.ErrPermanent)
	}
	return err
}

func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	switch reasonOf(err) {
	case "backendError", "internalError", "rateLimitExceeded", "jobRateLimitExceeded", "jobBackendError", "jobInternalError", "transport":
		return true
	}
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		return ge.Code >= 500 || ge.Code == 429
	}
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue)
}

func isDuplicate(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == 409
}

func isNotFound(err error) bool {
	var ge *googleapi.Error
	return errors.As(err, &ge) && ge.Code == 404
}

type metrics struct {
	jobs       *prometheus.CounterVec
	jobSeconds *prometheus.HistogramVec
	groupUnits prometheus.Histogram
	rows       prometheus.Counter
	conflicts  prometheus.Counter
	fenced     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vaultsink_bigquery_jobs_total",
			Help: "BigQuery jobs run by the sink, by kind (load, dml) and outcome (ok, error)."}, []string{"kind", "outcome"}),
		jobSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vaultsink_bigquery_job_duration_seconds",
			Help: "Time from the first jobs.insert to a finished job, retries included.", Buckets: prometheus.ExponentialBuckets(0.25, 2, 10)}, []string{"kind"}),
		groupUnits: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "vaultsink_bigquery_group_units",
			Help: "Windows committed by one load job and one DML statement.", Buckets: prometheus.ExponentialBuckets(1, 4, 7)}),
		rows: prometheus.NewCounter(prometheus.CounterOpts{Name: "vaultsink_bigquery_rows_total",
			Help: "Rows loaded into the target table."}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "vaultsink_bigquery_conflicts_total",
			Help: "Commit transactions BigQuery cancelled because another job changed the table at the same time (each is retried)."}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "vaultsink_bigquery_fenced_total",
			Help: "Commits refused because a newer lease epoch of the org is recorded in the fence table."}),
	}
	cs := []prometheus.Collector{m.jobs, m.jobSeconds, m.groupUnits, m.rows, m.conflicts, m.fenced}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("register bigquery metrics: %w", err)
			}
			cs[i] = are.ExistingCollector
		}
	}
	var ok bool
	if m.jobs, ok = cs[0].(*prometheus.CounterVec); !ok {
		return nil, errors.New("register bigquery metrics: vaultsink_bigquery_jobs_total has another type")
	}
	if m.jobSeconds, ok = cs[1].(*prometheus.HistogramVec); !ok {
		return nil, errors.New("register bigquery metrics: vaultsink_bigquery_job_duration_seconds has another type")
	}
	if m.groupUnits, ok = cs[2].(prometheus.Histogram); !ok {
		return nil, errors.New("register bigquery metrics: vaultsink_bigquery_group_units has another type")
	}
	if m.rows, ok = cs[3].(prometheus.Counter); !ok {
		return nil, errors.New("register bigquery metrics: vaultsink_bigquery_rows_total has another type")
	}
	if m.conflicts, ok = cs[4].(prometheus.Counter); !ok {
		return nil, errors.New("register bigquery metrics: vaultsink_bigquery_conflicts_total has another type")
	}
	if m.fenced, ok = cs[5].(prometheus.Counter); !ok {
		return nil, errors.New("register bigquery metrics: vaultsink_bigquery_fenced_total has another type")
	}
	return m, nil
}
