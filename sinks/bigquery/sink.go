package bigquery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"cloud.google.com/go/bigquery"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"

	"github.com/vaultsink/vaultsink/sinks"
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
func (s *Sink) Open(ctx context.Context, w event.Window) (sinks.Unit, error) {
	return &unit{s: s, w: w}, nil
}
