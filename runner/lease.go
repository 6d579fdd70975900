package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vaultsink/vaultsink/checkpoint"
)

var errLeaseHeld = errors.New("lease held by another process")

// acquire reads the org's checkpoint and takes its lease with a
// compare-and-swap write, so two daemons pointed at the same store never
// advance one org together. A lease that expired (its holder died) is taken
// over with a new epoch. A checkpoint the run must not build on (guard) is
// refused before anything is written; otherwise what the org's units are
// made with is recorded in it.
func (e *Engine) acquire(ctx context.Context, spec OrgSpec, apiNow time.Time) (checkpoint.Checkpoint, error) {
	org := spec.Org.ID
	cp, err := e.o.Store.Get(ctx, org)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		cp = checkpoint.Checkpoint{Org: org}
	case err != nil:
		return cp, fmt.Errorf("read checkpoint: %w", err)
	}
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
		return fmt.Errorf("%w: %s until %s", errLeaseHeld, l.Owner, l.Expires.UTC().Format("15:04:05Z"))
	}
	e.log.Info("taking over the lease of a process of this host that is gone", "org", cp.Org, "owner", l.Owner)
	return nil
}

// takeLease writes cp with this process's lease (a new epoch when it was
// another owner's), compare-and-swap.
func (e *Engine) takeLease(ctx context.Context, cp checkpoint.Checkpoint) (checkpoint.Checkpoint, error) {
	lease := checkpoint.Lease{Owner: e.o.Owner, Expires: e.now().Add(e.o.LeaseTTL), Epoch: 1}
	if cp.Lease != nil {
		lease.Epoch = cp.Lease.Epoch
		if cp.Lease.Owner != e.o.Owner {
			lease.Epoch++
		}
	}
	cp.Lease = &lease
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

// put writes cp (with the lease renewed by the caller). A conflict means
// another process took the org over: stop, the data already written is safe
// because every window write is idempotent.
func (e *Engine) put(ctx context.Context, cp *checkpoint.Checkpoint) error {
	// The window is committed: recording it is worth finishing even when
	// shutdown's grace ran out, or the next run redoes the window for nothing.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	v, err := e.o.Store.Put(ctx, *cp)
	if errors.Is(err, checkpoint.ErrConflict) {
		return fmt.Errorf("lease lost: another process moved org %s's checkpoint; stopping this org: %w", cp.Org, err)
	}
	if err != nil {
		return fmt.Errorf("write checkpoint: %w", err)
	}
	cp.Version = v
	return nil
}

// release records the run's outcome and lets the lease go, so another
// process need not wait for it to expire.
func (e *Engine) release(log *slog.Logger, cp *checkpoint.Checkpoint, res *Result) {
	now := e.now()
	cp.LastRun = now
	if res.Err == nil && res.Status == StatusCurrent {
		cp.LastSuccess = now
		cp.LastError = ""
		e.m.LastSuccess.WithLabelValues(cp.Org).Set(float64(now.Unix()))
	} else if res.Err != nil {
		cp.LastError = res.Err.Error()
	}
	if cp.Lease != nil && cp.Lease.Owner == e.o.Owner {
		cp.Lease.Expires = now
	}
	// A fresh context: the run's may be cancelled by shutdown, and the
	// bookkeeping is small and worth finishing.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := e.o.Store.Put(ctx, *cp); err != nil && !errors.Is(err, checkpoint.ErrConflict) {
		log.Warn("could not record run outcome in checkpoint", "err", err)
	}
}

// deadLocalOwner reports whether owner is a default owner id of this host
// (<hostname>-<pid>) whose process no longer exists: a daemon restarted after
// a crash (systemd, a container restart) then takes its own lease back at once
// instead of waiting for it to expire. Anything else, including a pid that is
// alive or an owner of another host, counts as held.
func deadLocalOwner(owner string) bool {
	host, err := os.Hostname()
	if err != nil || !strings.HasPrefix(owner, host+"-") {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(owner, host+"-"))
	if err != nil || pid <= 0 || pid == os.Getpid() {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}
