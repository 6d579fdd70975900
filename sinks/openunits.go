package sinks

import (
	"context"
	"errors"
	"sync"
)

// OpenUnits tracks a sink's units between Open and their Commit or Abort,
// so that Close aborts whatever is still open and no unit opens after it.
// The zero value is ready to use.
type OpenUnits[U interface {
	comparable
	Unit
}] struct {
	mu     sync.Mutex
	open   map[U]struct{}
	closed bool
}

// ErrSinkClosed is returned by Add once Close has run.
var ErrSinkClosed = errors.New("sink closed")

// Add records u as open, or returns ErrSinkClosed.
func (o *OpenUnits[U]) Add(u U) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrSinkClosed
	}
	if o.open == nil {
		o.open = map[U]struct{}{}
	}
	o.open[u] = struct{}{}
	return nil
}

// Forget records that u was committed or aborted.
func (o *OpenUnits[U]) Forget(u U) {
	o.mu.Lock()
	delete(o.open, u)
	o.mu.Unlock()
}

// Close refuses further units and aborts the open ones.
func (o *OpenUnits[U]) Close() error {
	o.mu.Lock()
	o.closed = true
	units := make([]U, 0, len(o.open))
	for u := range o.open {
		units = append(units, u)
	}
	o.mu.Unlock()
	var errs []error
	for _, u := range units {
		errs = append(errs, u.Abort(context.Background()))
	}
	return errors.Join(errs...)
}
