package s3

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/prometheus/client_golang/prometheus"

	promreg "github.com/vaultsink/vaultsink/internal/metrics"
	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

// User metadata keys (sent as x-amz-meta-<key>).
const (
	// metaEvents is the object's row count, so Stat can answer from a
	// HeadObject. A multipart upload's metadata is fixed before the count is
	// known, so those objects carry it only in the Parquet footer.
	metaEvents = "vaultsink-events"
	// metaUpload is a random token per unit: it tells a retried
	// CompleteMultipartUpload whether the object it finds is its own.
	metaUpload = "vaultsink-upload"
)

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Reader = (*Sink)(nil)
	_ sinks.Stater = (*Sink)(nil)
)

// Sink writes windows as Parquet objects to S3. It is safe for concurrent
// use by goroutines working on different windows.
type Sink struct {
	cfg     Config
	client  *s3.Client
	log     *slog.Logger
	version string
	m       *metrics

	units sinks.OpenUnits[*unit]
}

type metrics struct {
	parts       prometheus.Counter
	bytes       prometheus.Counter
	commits     *prometheus.CounterVec
	aborts      prometheus.Counter
	conditional *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		parts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vaultsink_s3_parts_uploaded_total", Help: "Multipart parts uploaded by the S3 sink.",
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vaultsink_s3_uploaded_bytes_total", Help: "Bytes of Parquet data committed by the S3 sink.",
		}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vaultsink_s3_commits_total", Help: "Units committed by the S3 sink, by how the object went up.",
		}, []string{"method"}),
		aborts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vaultsink_s3_multipart_aborts_total", Help: "Multipart uploads aborted by the S3 sink.",
		}),
		conditional: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vaultsink_s3_conditional_writes", Help: "1 when the S3 store honours conditional writes (If-None-Match/If-Match) on kind put or multipart, as probed at start-up; 0 when it ignores them.",
		}, []string{"kind"}),
	}
	if reg == nil {
		return m
	}
	m.parts = promreg.Register(reg, m.parts)
	m.bytes = promreg.Register(reg, m.bytes)
	m.commits = promreg.Register(reg, m.commits)
	m.aborts = promreg.Register(reg, m.aborts)
	m.conditional = promreg.Register(reg, m.conditional)
	return m
}

// New builds a sink from cfg (defaults applied to a copy).
func New(ctx context.Context, cfg Config, env sinks.Env) (*Sink, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 sink config: %w", err)
	}
	client, err := s3client.NewClient(ctx, cfg.ClientConfig)
	if err != nil {
		return nil, fmt.Errorf("s3 sink client: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{
		cfg: cfg, client: client, version: env.Version,
		log: log.With("sink", "s3", "bucket", cfg.Bucket),
		m:   newMetrics(env.Registerer),
	}, nil
}

// Client is the sink's S3 client (tests and tools use it to inspect the bucket).
func (s *Sink) Client() *s3.Client { return s.client }

// Identity is the bucket and the table prefix.
func (s *Sink) Identity() string { return "s3://" + s.cfg.Bucket + "/" + s.cfg.Prefix }

// Key is the object key of w's data.
func (s *Sink) Key(w event.Window) string { return s.cfg.Prefix + "/" + sinks.ObjectKey(w) }

// QuarantineKey is the object key of w's quarantine file.
func (s *Sink) QuarantineKey(w event.Window) string {
	return s.cfg.QuarantinePrefix + "/" + sinks.QuarantineKey(w)
}

// Open starts the unit for w. It downloads what the window's object holds
// (to a temp file: memory does not grow with the object) and reads its ids
// and content digests (the unit's Held). Nothing is sent to S3 until a
// part fills.
func (s *Sink) Open(ctx context.Context, w event.Window) (sinks.Unit, error) {
	var tok [12]byte
	_, _ = rand.Read(tok[:]) // crypto/rand.Read never fails
	u := &unit{s: s, w: w, key: s.Key(w), token: hex.EncodeToString(tok[:])}
	if err := u.readHeld(ctx); err != nil {
		return nil, err
	}
	if err := s.units.Add(u); err != nil {
		u.removeTemps()
		return nil, fmt.Errorf("open s3 unit: %w", err)
	}
	return u, nil
}

// readHeld downloads the window's object, if any, into a temp file and
// reads what it holds.
func (u *unit) readHeld(ctx context.Context) error {
	what := fmt.Sprintf("org %s, window %s", u.w.Org, u.w.Range())
	f, etag, err := u.s.download(ctx, u.key, what)
	if err != nil || f == nil {
		return err
	}
	held, err := pqread.Held(ctx, f, u.w)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("read what s3://%s/%s holds (%s): %w", u.s.cfg.Bucket, u.key, what, err)
	}
	u.heldFile, u.heldETag, u.held = f, etag, held
	return nil
}

// download copies key into a new temp file; nil when there is no object.
func (s *Sink) download(ctx context.Context, key, what string) (*os.File, string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		if s3client.IsNotFound(err) {
			return nil, "", nil
		}
		return nil, "", classify(s3client.OpError("GetObject", err), s.cfg.Bucket, key, what)
	}
	defer out.Body.Close()
	f, err := os.CreateTemp("", "vaultsink-s3-*.parquet")
	if err != nil {
		return nil, "", fmt.Errorf("read s3://%s/%s: %w", s.cfg.Bucket, key, err)
	}
	if _, err := io.Copy(f, out.Body); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, "", classify(s3client.OpError("GetObject", err), s.cfg.Bucket, key, what)
	}
	return f, aws.ToString(out.ETag), nil
}

// Close aborts the units still open. The S3 client holds no resources that
// need releasing beyond idle connections.
func (s *Sink) Close() error { return s.units.Close() }

func (s *Sink) forget(u *unit) { s.units.Forget(u) }

func (s *Sink) params(key, contentType string, meta map[string]string) objectParams {
	p := objectParams{
		bucket: s.cfg.Bucket, key: key, contentType: contentType, metadata: meta,
		sse: types.ServerSideEncryption(s.cfg.SSE), storageClass: types.StorageClass(s.cfg.StorageClass),
	}
	if s.cfg.SSEKMSKeyID != "" {
		p.kmsKeyID = aws.String(s.cfg.SSEKMSKeyID)
	}
	if len(s.cfg.Tags) > 0 {
		keys := make([]string, 0, len(s.cfg.Tags))
		for k := range s.cfg.Tags {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		v := url.Values{}
		for _, k := range keys {
			v.Set(k, s.cfg.Tags[k])
		}
		p.tagging = aws.String(v.Encode())
	}
	return p
}

// unit is one window being written. Used by one goroutine, except that
// Sink.Close may abort it concurrently, hence mu.
type unit struct {
	s     *Sink
	w     event.Window
	key   string
	token string

	mu    sync.Mutex
	up    *partWriter
	pq    *pqenc.Writer
	rows  int64 // rows written by Write
	done  bool
	start time.Time

	// what the window's object held at Open (nil, "" when none): its rows
	// are copied into the new object at Commit
	held     *event.HeldSet
	heldFile *os.File
	heldETag string

	// quarantine records are spooled to a temp file: a window whose every
	// record is quarantined must not hold them all in memory
	qfile *os.File
	qbuf  *bufio.Writer
	nQuar int64
}

func (u *unit) errorf(err error, key string) error {
	return classify(err, u.s.cfg.Bucket, key, fmt.Sprintf("org %s, window %s", u.w.Org, u.w.Range()))
}

// Write encodes rec into the window's object, uploading parts as they fill.
func (u *unit) Write(ctx context.Context, rec arrow.RecordBatch) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return errors.New("s3 unit: write after commit or abort")
	}
	if rec.NumRows() == 0 {
		return nil
	}
	n, err := sinks.WriteNew(rec, u.held, func(part arrow.RecordBatch) error {
		if u.pq == nil {
			if err := u.startData(ctx); err != nil {
				return err
			}
		}
		u.up.ctx = ctx
		return u.pq.Write(part)
	})
	u.rows += n
	if err != nil {
		return u.errorf(fmt.Errorf("encode parquet: %w", err), u.key)
	}
	return nil
}

// startData begins the object's upload and its Parquet writer.
func (u *unit) startData(ctx context.Context) error {
	u.start = time.Now()
	meta := map[string]string{metaUpload: u.token}
	p := u.s.params(u.key, "application/vnd.apache.parquet", meta)
	// The commit replaces the object only if it is still the version this
	// unit read at Open (or still absent): a stale writer cannot overwrite
	// what another committed meanwhile.
	if u.heldETag != "" {
		p.ifMatch = aws.String(u.heldETag)
	} else {
		p.ifNoneMatch = aws.String("*")
	}
	u.up = newPartWriter(ctx, u.s.client, p, int(u.s.cfg.PartSize))
	u.up.onPart = func(int) { u.s.m.parts.Inc() }
	pq, err := pqenc.NewWriter(u.up, pqenc.Meta{Window: u.w, Version: u.s.version}, u.s.cfg.Options)
	if err != nil {
		return fmt.Errorf("s3 unit %s: %w", u.w, err)
	}
	u.pq = pq
	return nil
}

// Held is what the window's object held when the unit was opened.
func (u *unit) Held() *event.HeldSet { return u.held }

// Quarantine spools q for the quarantine object written at Commit.
func (u *unit) Quarantine(_ context.Context, q event.Quarantined) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return errors.New("s3 unit: quarantine after commit or abort")
	}
	if u.qfile == nil {
		f, err := os.CreateTemp("", "vaultsink-s3-q-*.jsonl")
		if err != nil {
			return fmt.Errorf("spool quarantine of %s: %w", u.w, err)
		}
		u.qfile, u.qbuf = f, bufio.NewWriterSize(f, 64<<10)
	}
	b, err := json.Marshal(q)
	if err != nil {
		return fmt.Errorf("encode quarantined record: %w", err)
	}
	b = append(b, '\n')
	if _, err := u.qbuf.Write(b); err != nil {
		return fmt.Errorf("spool quarantine of %s: %w", u.w, err)
	}
	u.nQuar++
	return nil
}

// Commit uploads the quarantine file (if any) and completes the data object.
// The quarantine goes first so that a committed window never lacks it; a
// failure after it is repaired by rerunning the window, which rewrites both.
func (u *unit) Commit(ctx context.Context) (sinks.Result, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return sinks.Result{}, errors.New("s3 unit: commit after commit or abort")
	}
	res := sinks.Result{Quarantined: u.nQuar, New: u.rows, Vanished: int64(u.held.Missing()), Changed: int64(u.held.Changed())}
	if err := u.commitQuarantine(ctx); err != nil {
		u.abortLocked(ctx)
		return res, err
	}
	if u.pq == nil {
		// Nothing new: the object (if any) is left as it is (see
		// sinks.Unit.Commit).
		if u.held.Len() > 0 {
			res.Events = int64(u.held.Len())
			res.Location = "s3://" + u.s.cfg.Bucket + "/" + u.key
		}
		u.finish()
		return res, nil
	}
	u.up.ctx = ctx
	if u.held.Len() > 0 {
		if _, err := u.heldFile.Seek(0, io.SeekStart); err != nil {
			u.abortLocked(ctx)
			return res, fmt.Errorf("s3 unit %s: %w", u.w, err)
		}
		if err := pqread.Rows(ctx, u.heldFile, u.pq.Write); err != nil {
			u.abortLocked(ctx)
			return res, u.errorf(fmt.Errorf("keep the rows the object holds: %w", err), u.key)
		}
	}
	rows := u.pq.Rows()
	if err := u.pq.Close(); err != nil {
		u.abortLocked(ctx)
		return res, u.errorf(fmt.Errorf("close parquet: %w", err), u.key)
	}
	method := "put"
	if u.up.uploadID != "" {
		method = "multipart"
	} else {
		u.up.p.metadata[metaEvents] = strconv.FormatInt(rows, 10)
	}
	size := u.up.written
	if _, err := u.up.complete(); err != nil {
		u.abortLocked(ctx)
		return res, u.errorf(err, u.key)
	}
	u.finish()
	u.s.abortStale(ctx, u.key, u.up.uploadID)
	u.s.m.commits.WithLabelValues(method).Inc()
	u.s.m.bytes.Add(float64(size))
	res.Events, res.Bytes = rows, size
	res.Location = "s3://" + u.s.cfg.Bucket + "/" + u.key
	u.s.log.Debug("s3 object committed", "org", u.w.Org, "window", u.w.Range(), "rows", rows,
		"bytes", size, "method", method, "duration", time.Since(u.start))
	return res, nil
}

// abortStale aborts incomplete multipart uploads of key left by earlier
// attempts that were killed before they could abort (SIGKILL, OOM): once the
// window's object is committed they can only cost storage. The checkpoint
// lease keeps other writers of this org away, so nothing live is aborted
// (at worst a concurrent backfill of the same window fails and is redone).
// Failures are logged, never returned: the commit already succeeded, and the
// bucket's abort-incomplete-multipart lifecycle rule is the safety net.
func (s *Sink) abortStale(ctx context.Context, key, own string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	ups, err := ListIncompleteUploads(ctx, s.client, s.cfg.Bucket, key)
	if err != nil {
		s.log.Warn("could not list stale multipart uploads (needs s3:ListBucketMultipartUploads)", "key", key, "err", err)
		return
	}
	for _, up := range ups {
		if up.Key != key || up.UploadID == own {
			continue
		}
		_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &up.Key, UploadId: &up.UploadID})
		if err != nil {
			s.log.Warn("could not abort a stale multipart upload", "key", key, "upload_id", up.UploadID, "err", err)
			continue
		}
		s.m.aborts.Inc()
		s.log.Info("aborted a stale multipart upload of an earlier attempt", "key", key, "initiated", up.Initiated)
	}
}

// commitQuarantine uploads the spooled quarantine records, streaming from
// the temp file (memory: two parts), or removes the window's earlier
// quarantine object when this unit quarantined nothing.
func (u *unit) commitQuarantine(ctx context.Context) error {
	qkey := u.s.QuarantineKey(u.w)
	if u.nQuar == 0 {
		_, err := u.s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &u.s.cfg.Bucket, Key: &qkey})
		if err != nil && !s3client.IsNotFound(err) {
			return u.errorf(s3client.OpError("DeleteObject", err), qkey)
		}
		return nil
	}
	if err := u.qbuf.Flush(); err != nil {
		return fmt.Errorf("spool quarantine of %s: %w", u.w, err)
	}
	if _, err := u.qfile.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("spool quarantine of %s: %w", u.w, err)
	}
	qw := newPartWriter(ctx, u.s.client, u.s.params(qkey, "application/x-ndjson", nil), int(u.s.cfg.PartSize))
	if _, err := io.Copy(qw, u.qfile); err != nil {
		_ = qw.abort(ctx)
		return u.errorf(err, qkey)
	}
	if _, err := qw.complete(); err != nil {
		_ = qw.abort(ctx)
		return u.errorf(err, qkey)
	}
	return nil
}

func (u *unit) finish() {
	u.done = true
	u.removeTemps()
	u.s.forget(u)
}

// removeTemps removes the unit's spooled files.
func (u *unit) removeTemps() {
	for _, f := range []*os.File{u.heldFile, u.qfile} {
		if f != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}
	u.heldFile, u.qfile, u.qbuf = nil, nil, nil
}

// Abort discards the unit and its incomplete upload. Abort after Commit is a no-op.
func (u *unit) Abort(ctx context.Context) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		return nil
	}
	return u.abortLocked(ctx)
}

func (u *unit) abortLocked(ctx context.Context) error {
	u.finish()
	if u.up == nil {
		return nil
	}
	hadUpload := u.up.uploadID != ""
	u.up.err = errAborted
	if u.pq != nil {
		u.pq.Abort() // frees its buffers; nothing more is written
	}
	err := u.up.abort(ctx)
	if hadUpload {
		u.s.m.aborts.Inc()
	}
	if err != nil {
		u.s.log.Warn("s3 multipart abort failed; a lifecycle rule must clean it up",
			"org", u.w.Org, "window", u.w.Range(), "err", err)
		return u.errorf(err, u.key)
	}
	return nil
}

var errAborted = errors.New("unit aborted")
