package sinks

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Env is what every sink gets from the daemon when it is built.
type Env struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // never nil: the daemon's registry
	Version    string                // vaultsink version, recorded in file metadata
}

var (
	mu       sync.RWMutex
	registry = map[string]func() Config{}
)

// Register makes a sink type available under name (the `type:` value). It is
// called from the sink package's init; registering a name twice panics.
func Register(name string, newConfig func() Config) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("sinks: Register called twice for " + name)
	}
	registry[name] = newConfig
}

// New returns a fresh, zero config for the sink type name.
func New(name string) (Config, error) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown sink type %q (known: %v)", name, typesLocked())
	}
	return f(), nil
}

// Types lists the registered sink types, sorted.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	return typesLocked()
}

func typesLocked() []string {
	out := make([]string, 0, len(registry))
	for k := range registry {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
