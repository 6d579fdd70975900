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

	"github.com/vaultsink/vaultsink/sinks"
)

// targetSchema is source.Schema as a BigQuery table.
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
// permanent error. It succeeds once per sink.
func (s *Sink) ensure(ctx context.Context) error {
	s.ensureMu.Lock()
	defer s.ensureMu.Unlock()
	if s.ensured {
		return nil
	}
	for _, ds := range []string{s.cfg.Dataset, s.cfg.StagingDataset} {
		d := s.client.DatasetInProject(s.cfg.Project, ds)
		if _, err := d.Metadata(ctx); err != nil {
			if !isNotFound(err) {
				return fmt.Errorf("get dataset %s: %w", ds, classify(err))
			}
			if err := d.Create(ctx, &bigquery.DatasetMetadata{Location: s.cfg.Location}); err != nil && !isDuplicate(err) {
				return fmt.Errorf("create dataset %s: %w", ds, classify(err))
			}
		}
	}
	tables := []struct {
		name   string
		schema bigquery.Schema
		field  string
		clust  []string
	}{
		{s.cfg.Table, targetSchema, "timestamp", []string{"org_id", "action"}},
		{s.quarantineTable(), quarantineSchema, "window_start", []string{"org_id"}},
	}
	for _, tb := range tables {
		if err := s.ensureTable(ctx, tb.name, tb.schema, tb.field, tb.clust); err != nil {
			return err
		}
	}
	s.ensured = true
	return nil
}

func (s *Sink) ensureTable(ctx context.Context, name string, schema bigquery.Schema, partField string, clustering []string) error {
	t := s.client.DatasetInProject(s.cfg.Project, s.cfg.Dataset).Table(name)
	md, err := t.Metadata(ctx)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("get table %s.%s: %w", s.cfg.Dataset, name, classify(err))
	}
	if err != nil {
		tp := &bigquery.TimePartitioning{Type: bigquery.DayPartitioningType, Field: partField, Expiration: s.cfg.PartitionExpiration}
		nm := &bigquery.TableMetadata{Schema: schema, TimePartitioning: tp, Clustering: &bigquery.Clustering{Fields: clustering},
			Description: s.cfg.Description, Labels: s.cfg.Labels}
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
	if tp := md.TimePartitioning; tp == nil || tp.Field != partField {
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
// job is fetched and waited for, and its success is ours. A job that failed
// for a transient reason cannot be rerun under its id, so the next attempt
// takes the next id of a fixed sequence (id_r1, id_r2, ...). A failed job
// found under an id (a 409 from an earlier run that failed, for any reason)
// belongs to that earlier attempt: the walk moves on to the next id without
// counting it, or a window whose job once failed permanently (a schema error
// since fixed) could never be written again while BigQuery remembers the id.
func (s *Sink) runJob(ctx context.Context, kind, base string, start func(ctx context.Context, id string) (*bigquery.Job, error)) (*bigquery.Job, error) {
	const maxAttempts, maxSuffix = 6, 100
	id, suffix := base, 0
	pause := s.retryBase
	began := time.Now()
	outcome := "error"
	defer func() {
		s.m.jobs.WithLabelValues(kind, outcome).Inc()
		s.m.jobSeconds.WithLabelValues(kind).Observe(time.Since(began).Seconds())
	}()
	for attempt := 1; ; attempt++ {
		retry := func() error {
			if attempt >= maxAttempts {
				return fmt.Errorf("gave up after %d attempts", attempt)
			}
			d := pause + time.Duration(rand.Int64N(int64(pause)/2+1))
			pause = min(pause*2, 30*time.Second)
			select {
			case <-time.After(d):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		job, err := start(ctx, id)
		earlier := isDuplicate(err)
		if earlier {
			s.log.Info("job exists from an earlier attempt; waiting for it", "job", id)
			job, err = s.client.JobFromIDLocation(ctx, id, s.cfg.Location)
		}
		if err == nil {
			var st *bigquery.JobStatus
			st, err = waitJob(ctx, job)
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

func waitJob(ctx context.Context, job *bigquery.Job) (*bigquery.JobStatus, error) {
	if st := job.LastStatus(); st != nil && st.Done() {
		return st, nil
	}
	pause := 200 * time.Millisecond
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
			return nil, ctx.Err()
		}
		pause = min(pause*3/2, 5*time.Second)
	}
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
	}
	cs := []prometheus.Collector{m.jobs, m.jobSeconds, m.groupUnits, m.rows}
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
	return m, nil
}
