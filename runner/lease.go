package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/clip"
	"github.com/vaultsink/vaultsink/sinks"
)

// The checkpoint lease keeps two processes from writing one org at once:
// a run takes it with a compare-and-swap write of the org's checkpoint
// before it writes anything, keeps it by renewing it in the background
// while it works, proves it right before every commit, and lets it go at
// the end. Every commit also carries the lease's fence (owner and epoch)
// to the sink, which refuses it where the store can tell that another
// writer came in between (a conditional write, an epoch row).

var errLeaseHeld = errors.New("lease held by another process")

// ErrLeaseLost means another process took the org's lease during a run:
// the run stopped without committing anything more.
var ErrLeaseLost = errors.New("lease lost")

// OwnerID is a lease owner unique to this process by construction: the
// label (lease.owner, a readable name; "vaultsink" when empty), the host,
// the pid and a random instance id. Two containers that share a hostname
// and a pid, or two replicas that share a config, still differ.
func OwnerID(label string) string {
	if label == "" {
		label = "vaultsink"
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s@%s:%d:%s", label, host, os.Getpid(), hex.EncodeToString(b[:]))
}

// deadLocalOwner reports whether owner (an OwnerID) names a process of this
// host that no longer exists: a daemon restarted after a crash (systemd, a
// container restart) then takes its own lease back at once instead of
// waiting for it to expire. Anything else, including a pid that is alive
// (in a container, pid 1 of another container looks like ours: held) or an
// owner of another host, counts as held.
func deadLocalOwner(owner string) bool {
	_, rest, ok := strings.Cut(owner, "@")
	if !ok {
		return false
	}
	parts := strings.Split(rest, ":")
	if len(parts) != 3 {
		return false
	}
	host, err := os.Hostname()
	if err != nil || parts[0] != host {
		return false
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// acquire reads the org's checkpoint and takes its lease (see take).
func (e *Engine) acquire(ctx context.Context, spec OrgSpec, apiNow time.Time) (checkpoint.Checkpoint, error) {
	cp, err := e.readCheckpoint(ctx, spec.Org.ID)
	if err != nil {
		return cp, err
	}
	return e.take(ctx, spec, cp, apiNow)
}

// take takes the org's lease on cp, the checkpoint as just read, with a
// compare-and-swap write, so two daemons pointed at the same store never
// advance one org together (a cp that is no longer the stored one loses
// the swap: errLeaseHeld). A lease that expired (its holder died) is taken
// over with a new epoch. A checkpoint the run must not build on (guard) is
// refused before anything is written; otherwise what the org's units are
// made with is recorded in it.
func (e *Engine) take(ctx context.Context, spec OrgSpec, cp checkpoint.Checkpoint, apiNow time.Time) (checkpoint.Checkpoint, error) {
	if err := e.leaseFree(cp); err != nil {
		return cp, err
	}
	if err := e.guard(spec, cp, apiNow); err != nil {
		return cp, &stageError{"checkpoint", err}
	}
	record(spec, &cp)
	return e.takeLease(ctx, cp)
}

// leaseFree returns errLeaseHeld when another live process holds cp's lease.
func (e *Engine) leaseFree(cp checkpoint.Checkpoint) error {
	l := cp.Lease
	if l == nil || l.Owner == e.o.Owner || !e.now().Before(l.Expires) {
		return nil
	}
	if !deadLocalOwner(l.Owner) {
		return fmt.Errorf("%w: %s (epoch %d) until %s", errLeaseHeld, l.Owner, l.Epoch, l.Expires.UTC().Format("15:04:05Z"))
	}
	e.log.Info("taking over the lease of a process of this host that is gone", "org", cp.Org, "owner", l.Owner)
	return nil
}

// takeLease writes cp with this process's lease (a new epoch when it was
// another owner's), compare-and-swap.
//
// A new epoch is the larger of the last one plus one and the clock in
// milliseconds, so epochs keep growing when a checkpoint is lost or
// reset: the fences the sinks keep (BigQuery's fence table) remember the
// highest epoch that committed, and a process starting again at 1 would
// be refused as stale.
func (e *Engine) takeLease(ctx context.Context, cp checkpoint.Checkpoint) (checkpoint.Checkpoint, error) {
	lease := checkpoint.Lease{Owner: e.o.Owner, Expires: e.now().Add(e.o.LeaseTTL), Epoch: e.now().UnixMilli()}
	if cp.Lease != nil {
		if cp.Lease.Owner == e.o.Owner {
			lease.Epoch = cp.Lease.Epoch
		} else {
			lease.Epoch = max(cp.Lease.Epoch+1, lease.Epoch)
		}
	}
	cp.Lease = &lease
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	v, err := e.o.Store.Put(ctx, cp)
	if errors.Is(err, checkpoint.ErrConflict) {
		return cp, fmt.Errorf("%w: another process wrote the checkpoint first", errLeaseHeld)
	}
	if err != nil {
		return cp, fmt.Errorf("take lease: %w", err)
	}
	cp.Version = v
	return cp, nil
}

// storeTimeout bounds one checkpoint store call.
const storeTimeout = 30 * time.Second

// holder keeps an org's checkpoint and lease for one run. Every write of
// the checkpoint goes through it, one at a time; a goroutine renews the
// lease every third of its TTL while the run works. When a write finds the
// checkpoint moved by another process, or the lease cannot be renewed
// before it expires, the lease is lost: the run's context is cancelled and
// every later commit refused.
type holder struct {
	e    *Engine
	log  *slog.Logger
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	cp     checkpoint.Checkpoint
	lost   error
	cancel context.CancelCauseFunc
}

// hold starts keeping cp (just written with this process's lease) and
// returns the run's context, cancelled with ErrLeaseLost's error when the
// lease goes.
func (e *Engine) hold(ctx context.Context, cp checkpoint.Checkpoint, log *slog.Logger) (*holder, context.Context) {
	ctx, cancel := context.WithCancelCause(ctx)
	h := &holder{e: e, log: log, cp: cp, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{})}
	go h.renewLoop()
	return h, ctx
}

// fence is what a commit carries to the sink.
func (h *holder) fence() sinks.Fence {
	h.mu.Lock()
	defer h.mu.Unlock()
	return sinks.Fence{Owner: h.cp.Lease.Owner, Epoch: h.cp.Lease.Epoch}
}

// with runs fn on the held checkpoint (to read it, or change it for the
// next write).
func (h *holder) with(fn func(cp *checkpoint.Checkpoint)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(&h.cp)
}

// update changes the checkpoint with fn and writes it, renewing the lease.
func (h *holder) update(ctx context.Context, fn func(cp *checkpoint.Checkpoint)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return h.lost
	}
	if fn != nil {
		fn(&h.cp)
	}
	return h.writeLocked(ctx)
}

func (h *holder) writeLocked(ctx context.Context) error {
	h.cp.Lease.Expires = h.e.now().Add(h.e.o.LeaseTTL)
	// The window is committed: recording it is worth finishing even when
	// shutdown's grace ran out, or the next run redoes the window for nothing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	v, err := h.e.o.Store.Put(ctx, h.cp)
	if errors.Is(err, checkpoint.ErrConflict) {
		return h.loseLocked(ctx, "its checkpoint was written by another process")
	}
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	h.cp.Version = v
	return nil
}

// loseLocked records the loss of the lease, naming its new owner, and
// cancels the run.
func (h *holder) loseLocked(ctx context.Context, why string) error {
	if h.lost != nil {
		return h.lost
	}
	org := h.cp.Org
	owner, epoch := "another process", int64(0)
	if cp, err := h.e.o.Store.Get(ctx, org); err == nil && cp.Lease != nil {
		owner, epoch = cp.Lease.Owner, cp.Lease.Epoch
	}
	h.lost = fmt.Errorf("%w to %s (epoch %d): %s; org %s stops here, nothing more is committed (this run held epoch %d)",
		ErrLeaseLost, owner, epoch, why, org, h.cp.Lease.Epoch)
	h.e.m.LeaseLost.WithLabelValues(org).Inc()
	h.cancel(h.lost)
	return h.lost
}

// check proves, right before a commit, that the lease is still this run's:
// it reads the checkpoint back from the store.
func (h *holder) check(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return h.lost
	}
	if h.e.now().After(h.cp.Lease.Expires) {
		return h.loseLocked(ctx, "its lease expired before the commit (renewal failed)")
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
	defer cancel()
	cp, err := h.e.o.Store.Get(rctx, h.cp.Org)
	if err != nil {
		return fmt.Errorf("read checkpoint before the commit: %w", err)
	}
	if l := cp.Lease; l == nil || l.Owner != h.cp.Lease.Owner || l.Epoch != h.cp.Lease.Epoch || cp.Version != h.cp.Version {
		return h.loseLocked(rctx, "its checkpoint changed since this run took the lease")
	}
	return nil
}

// fenced turns a sink's ErrFenced into the loss of the lease.
func (h *holder) fenced(ctx context.Context, err error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return fmt.Errorf("%w (%v)", h.loseLocked(context.WithoutCancel(ctx), "the sink refused the commit: another writer changed the window"), err)
}

// renewLoop renews the lease every third of its TTL until stopped. A
// renewal that fails (the store unreachable) is retried at the next turn;
// when the lease would expire before a renewal succeeds, it is lost.
func (h *holder) renewLoop() {
	defer close(h.done)
	every := max(h.e.o.LeaseTTL/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		h.mu.Lock()
		if h.lost != nil {
			h.mu.Unlock()
			return
		}
		err := h.writeLocked(context.Background())
		if err != nil && h.lost == nil && !h.e.now().Add(every).Before(h.cp.Lease.Expires) {
			err = h.loseLocked(context.Background(), "its lease could not be renewed before it expired: "+err.Error())
		}
		h.mu.Unlock()
		if err != nil {
			h.log.Warn("lease renewal failed", "err", err)
		}
	}
}

// release stops the renewal, records the run's outcome and lets the lease
// go, so another process need not wait for it to expire. A lost lease is
// left alone: it is the other process's now.
func (h *holder) release(res *Result) checkpoint.Checkpoint {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost != nil {
		return h.cp
	}
	now := h.e.now()
	cp := &h.cp
	cp.LastRun = now
	if res.Err == nil && res.Status == StatusCurrent {
		cp.LastSuccess = now
		cp.LastError = ""
	} else if res.Err != nil {
		cp.LastError = clip.String(res.Err.Error(), checkpoint.MaxLastErrorBytes)
	}
	cp.Lease.Expires = now
	// A fresh context: the run's may be cancelled by shutdown, and the
	// bookkeeping is small and worth finishing.
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if v, err := h.e.o.Store.Put(ctx, *cp); err != nil && !errors.Is(err, checkpoint.ErrConflict) {
		h.log.Warn("could not record run outcome in checkpoint", "err", err)
	} else if err == nil {
		cp.Version = v
	}
	return h.cp
}
