package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/internal/fsutil"
	"github.com/vaultsink/vaultsink/internal/metrics"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

// Sink writes windows as Parquet files under a root directory.
type Sink struct {
	root, qroot string
	dirMode     fs.FileMode
	fileMode    fs.FileMode
	opts        pqenc.Options
	version     string
	log         *slog.Logger
	bytes       prometheus.Counter
	commits     prometheus.Counter

	units sinks.OpenUnits[*unit]
}

var (
	_ sinks.Sink   = (*Sink)(nil)
	_ sinks.Reader = (*Sink)(nil)
)

// New builds a local sink from cfg (defaults are applied to a copy) and
// creates its root directory.
func New(cfg Config, env sinks.Env) (*Sink, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("local sink config: %w: %w", err, sinks.ErrPermanent)
	}
	mode, _ := parseDirMode(cfg.DirMode) // validated above
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := env.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	root, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("local sink path %q: %w", cfg.Path, err)
	}
	qroot, err := filepath.Abs(cfg.QuarantinePath)
	if err != nil {
		return nil, fmt.Errorf("local sink quarantine_path %q: %w", cfg.QuarantinePath, err)
	}
	if err := os.MkdirAll(root, mode); err != nil {
		return nil, fmt.Errorf("create sink root: %w: %w", err, sinks.ErrPermanent)
	}
	s := &Sink{
		root:     root,
		qroot:    qroot,
		dirMode:  mode,
		fileMode: mode &^ 0o111,
		opts:     cfg.Options,
		version:  env.Version,
		log:      log,
		bytes:    counter(reg, "vaultsink_sink_bytes_written_total", "Bytes of committed data files, by sink."),
		commits:  counter(reg, "vaultsink_sink_commits_total", "Units committed (empty windows included), by sink."),
	}
	return s, nil
}

// counter registers (or reuses, when another sink or a second instance
// already did) a counter vector and returns this sink's child.
func counter(reg prometheus.Registerer, name, help string) prometheus.Counter {
	cv := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"sink"}))
	return cv.WithLabelValues("local")
}

// Identity is the sink's root directory.
func (s *Sink) Identity() string { return "local:" + s.root }

// Path is where the data file of w lives (whether or not it exists).
func (s *Sink) Path(w event.Window) string {
	return filepath.Join(s.root, filepath.FromSlash(sinks.ObjectKey(w)))
}

// QuarantinePath is where the quarantine file of w lives.
func (s *Sink) QuarantinePath(w event.Window) string {
	return filepath.Join(s.qroot, filepath.FromSlash(sinks.QuarantineKey(w)))
}

// Open starts the unit of w. It removes temp files a crashed earlier unit of
// the same window left behind, and reads what the window's file holds (the
// unit's Held). Files are created on the first non-empty write.
func (s *Sink) Open(ctx context.Context, w event.Window) (sinks.Unit, error) {
	if err := checkWindow(w); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u := &unit{s: s, w: w, final: s.Path(w), qfinal: s.QuarantinePath(w), started: time.Now()}
	var err error
	for _, p := range []string{u.final, u.qfinal} {
		if err := removeTemps(p); err != nil {
			return nil, fmt.Errorf("open %s: clean temp files: %w", w, err)
		}
	}
	// What the file is now: a commit replaces it only if it is still so.
	u.seen, err = identify(u.final)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", w, err)
	}
	held, err := readHeld(ctx, u.final, w)
	if err != nil {
		return nil, fmt.Errorf("open %s: read what %s holds: %w", w, u.final, err)
	}
	u.held = held
	if err := s.units.Add(u); err != nil {
		return nil, fmt.Errorf("open %s: %w", w, err)
	}
	return u, nil
}

// Close aborts units still open.
func (s *Sink) Close() error { return s.units.Close() }

func (s *Sink) forget(u *unit) { s.units.Forget(u) }

// checkWindow refuses windows whose org would escape the root or make a
// second partition level: the org is a path element.
func checkWindow(w event.Window) error {
	if w.Org == "" || w.Org == "." || w.Org == ".." || strings.ContainsAny(w.Org, `/\`+"\x00") {
		return fmt.Errorf("window %s: org %q is not usable as a directory name: %w", w, w.Org, sinks.ErrPermanent)
	}
	if !w.Start.Before(w.End) {
		return fmt.Errorf("window %s: start is not before end: %w", w, sinks.ErrPermanent)
	}
	return nil
}

// tempPrefix is the hidden temp name prefix for final path p. Starting with
// "." keeps temp files out of Hive readers and "*.parquet" globs alike.
func tempPrefix(p string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp-")
}

// removeTemps removes the temp files of final left by processes that are
// gone (killed during a write); a live process's temp file is its own
// business (it commits or fails that write itself).
func removeTemps(final string) error {
	prefix := tempPrefix(final)
	matches, err := filepath.Glob(prefix + "*")
	if err != nil {
		return err
	}
	for _, m := range matches {
		pid, _, _ := strings.Cut(strings.TrimPrefix(m, prefix), "-")
		if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && n > 0 && !errors.Is(syscall.Kill(n, 0), syscall.ESRCH) {
			continue
		}
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// readHeld reads the ids and content digests of the file at path; nil
// when there is none.
func readHeld(ctx context.Context, path string, w event.Window) (*event.HeldSet, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return pqread.Held(ctx, f, w)
}

// unit is one window being written. Not safe for concurrent use.
type unit struct {
	s       *Sink
	w       event.Window
	started time.Time
	held    *event.HeldSet // what the window's file held at Open; nil if none
	seen    fileID         // the window's file at Open
	written int64          // rows written by Write

	final string
	tmp   *os.File
	buf   *bufio.Writer
	pw    *pqenc.Writer

	qfinal string
	qtmp   *os.File
	qbuf   *bufio.Writer
	qenc   *json.Encoder
	qn     int64

	done bool // committed or aborted
}

func (u *unit) Write(ctx context.Context, rec arrow.RecordBatch) error {
	if u.done {
		return fmt.Errorf("write %s: unit already finished", u.w)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if rec.NumRows() == 0 {
		return nil
	}
	n, err := sinks.WriteNew(rec, u.held, func(part arrow.RecordBatch) error {
		if u.pw == nil {
			if err := u.startData(); err != nil {
				return err
			}
		}
		return u.pw.Write(part)
	})
	u.written += n
	if err != nil {
		return fmt.Errorf("write %s: %w", u.w, err)
	}
	return nil
}

// startData creates the temp data file and its Parquet writer.
func (u *unit) startData() error {
	f, err := u.s.createTemp(u.final, u.s.fileMode)
	if err != nil {
		return err
	}
	u.tmp = f
	u.buf = bufio.NewWriterSize(f, 1<<20)
	pw, err := pqenc.NewWriter(u.buf, pqenc.Meta{Window: u.w, Version: u.s.version}, u.s.opts)
	if err != nil {
		return fmt.Errorf("%w: %w", err, sinks.ErrPermanent)
	}
	u.pw = pw
	return nil
}

// Held is what the window's file held when the unit was opened.
func (u *unit) Held() *event.HeldSet { return u.held }

func (u *unit) Quarantine(ctx context.Context, q event.Quarantined) error {
	if u.done {
		return fmt.Errorf("quarantine %s: unit already finished", u.w)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if u.qtmp == nil {
		f, err := u.s.createTemp(u.qfinal, 0o600)
		if err != nil {
			return fmt.Errorf("quarantine %s: %w", u.w, err)
		}
		u.qtmp = f
		u.qbuf = bufio.NewWriter(f)
		u.qenc = json.NewEncoder(u.qbuf)
		u.qenc.SetEscapeHTML(false)
	}
	if err := u.qenc.Encode(q); err != nil {
		return fmt.Errorf("quarantine %s: %w", u.w, err)
	}
	u.qn++
	return nil
}

// Commit publishes the quarantine file, then the data file, each by rename.
// Each rename is atomic on its own; a crash between them is repaired by the
// rerun the unmoved checkpoint causes. When the window's file held rows and
// new ones were written, the held rows are copied into the new file first
// (they win over any new copy, which the walk already skipped); when
// nothing new was written the file is left as it is.
func (u *unit) Commit(ctx context.Context) (sinks.Result, error) {
	if u.done {
		return sinks.Result{}, fmt.Errorf("commit %s: unit already finished", u.w)
	}
	if err := ctx.Err(); err != nil {
		return sinks.Result{}, err
	}
	res := sinks.Result{New: u.written, Vanished: int64(u.held.Missing()), Changed: int64(u.held.Changed())}
	if u.qtmp != nil {
		if err := u.qbuf.Flush(); err != nil {
			return res, fmt.Errorf("commit %s: write quarantine: %w", u.w, err)
		}
		if err := publish(u.qtmp, u.qfinal); err != nil {
			return res, fmt.Errorf("commit %s: quarantine: %w", u.w, err)
		}
		u.qtmp = nil
		res.Quarantined = u.qn
	} else if err := removeDurably(u.qfinal); err != nil {
		return res, fmt.Errorf("commit %s: remove the earlier quarantine: %w", u.w, err)
	}
	switch {
	case u.pw != nil:
		if u.held.Len() > 0 {
			if err := u.copyHeld(ctx); err != nil {
				return res, fmt.Errorf("commit %s: keep the rows %s holds: %w", u.w, u.final, err)
			}
		}
		if err := u.pw.Close(); err != nil {
			return res, fmt.Errorf("commit %s: %w", u.w, err)
		}
		if err := u.buf.Flush(); err != nil {
			return res, fmt.Errorf("commit %s: write data: %w", u.w, err)
		}
		if err := u.s.publishIfUnchanged(u.tmp, u.final, u.seen); err != nil {
			return res, fmt.Errorf("commit %s: data: %w", u.w, err)
		}
		u.tmp = nil
		res.Events = u.pw.Rows()
		res.Bytes = u.pw.Bytes()
		res.Location = u.final
		u.s.bytes.Add(float64(res.Bytes))
	case u.held.Len() > 0:
		res.Events = int64(u.held.Len())
		res.Location = u.final
	}
	u.done = true
	u.s.forget(u)
	u.s.commits.Inc()
	u.s.log.Debug("local unit committed", "org", u.w.Org, "window", u.w.Range(), "rows", res.Events,
		"bytes", res.Bytes, "quarantined", res.Quarantined, "path", res.Location, "duration", time.Since(u.started))
	return res, nil
}

// copyHeld appends every row of the window's current file to the new one.
func (u *unit) copyHeld(ctx context.Context) error {
	f, err := os.Open(u.final)
	if err != nil {
		return err
	}
	defer f.Close()
	return pqread.Rows(ctx, f, u.pw.Write)
}

// removeDurably removes path if it exists and makes the removal durable.
func removeDurably(path string) error {
	err := os.Remove(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return fsutil.SyncDir(filepath.Dir(path))
}

// Abort removes the temp files; nothing becomes visible. A no-op after Commit.
func (u *unit) Abort(ctx context.Context) error {
	if u.done {
		return nil
	}
	u.done = true
	u.s.forget(u)
	if u.pw != nil {
		u.pw.Abort() // releases the batches it still holds
	}
	var errs []error
	for _, f := range []*os.File{u.tmp, u.qtmp} {
		if f == nil {
			continue
		}
		f.Close()
		if err := os.Remove(f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	u.tmp, u.qtmp = nil, nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("abort %s: %w", u.w, err)
	}
	return nil
}

// createTemp creates the hidden temp file for final, creating (and making
// durable) the directories on the way.
func (s *Sink) createTemp(final string, mode fs.FileMode) (*os.File, error) {
	dir := filepath.Dir(final)
	if err := s.mkdirAll(dir); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, filepath.Base(tempPrefix(final))+strconv.Itoa(os.Getpid())+"-*")
	if err != nil {
		return nil, fmt.Errorf("create temp file: %w", err)
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("chmod temp file: %w", err)
	}
	return f, nil
}

// mkdirAll creates dir and fsyncs the parent of every directory it created,
// so that a committed file's path survives a power loss, not just its bytes.
func (s *Sink) mkdirAll(dir string) error {
	var created []string
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(created) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, s.dirMode); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	for _, d := range created {
		if err := fsutil.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

// fileID is what tells one version of a file from another: a replacement
// by rename changes the inode, a rewrite in place the size or the time.
type fileID struct {
	exists bool
	ino    uint64
	size   int64
	mtime  int64
}

func identify(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fileID{}, nil
	}
	if err != nil {
		return fileID{}, err
	}
	id := fileID{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id.ino = st.Ino
	}
	return id, nil
}

// publishIfUnchanged publishes f onto final only if final is still the
// file the unit saw when it opened (a conditional write, like S3's
// If-Match): another writer that committed the window meanwhile holds the
// newer version, and the stale unit must not replace it. The check and the
// rename happen under an flock on the sink's root, which every vaultsink
// process writing this directory takes.
func (s *Sink) publishIfUnchanged(f *os.File, final string, seen fileID) error {
	unlock, err := s.lock()
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	defer unlock()
	now, err := identify(final)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if now != seen {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("%w: %s changed since this unit read it (another writer committed the window)", sinks.ErrFenced, final)
	}
	return publish(f, final)
}

// lock takes an exclusive flock on <root>/.vaultsink.lock.
func (s *Sink) lock() (func(), error) {
	return fsutil.Lock(filepath.Join(s.root, ".vaultsink.lock"))
}

// publish makes f durable and renames it onto final, then makes the rename
// durable. f is closed in every case; on error the temp file is removed.
func publish(f *os.File, final string) (err error) {
	defer func() {
		if err != nil {
			os.Remove(f.Name())
		}
	}()
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	if err := os.Rename(f.Name(), final); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return fsutil.SyncDir(filepath.Dir(final))
}
