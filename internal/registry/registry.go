// Package registry is the one registry of pluggable types: the sink types
// (package sinks) and the checkpoint store types (package checkpoint) each
// keep one, keyed by the `type:` value of their config section. A type
// registers a constructor of its zero config from its package's init; the
// binary chooses which types exist by importing their packages (cmd does,
// in one place).
package registry

import (
	"fmt"
	"slices"
	"sync"
)

// Registry maps type names to constructors of zero configs of type C.
type Registry[C any] struct {
	kind string // "sink", "checkpoint": for messages

	mu    sync.RWMutex
	types map[string]func() C
}

// New returns an empty registry; kind names what it holds in errors.
func New[C any](kind string) *Registry[C] {
	return &Registry[C]{kind: kind, types: map[string]func() C{}}
}

// Register makes a type available under name; registering a name twice
// panics (two packages claim one `type:` value: a build mistake).
func (r *Registry[C]) Register(name string, newConfig func() C) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.types[name]; dup {
		panic(r.kind + ": Register called twice for " + name)
	}
	r.types[name] = newConfig
}

// New returns a fresh, zero config of the type name.
func (r *Registry[C]) New(name string) (C, error) {
	r.mu.RLock()
	f, ok := r.types[name]
	r.mu.RUnlock()
	if !ok {
		var zero C
		return zero, fmt.Errorf("unknown %s type %q (known: %v)", r.kind, name, r.Types())
	}
	return f(), nil
}

// Types lists the registered type names, sorted.
func (r *Registry[C]) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.types))
	for k := range r.types {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
