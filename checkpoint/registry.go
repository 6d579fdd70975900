package checkpoint

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// Config is one store type's configuration section (`checkpoint:`). Like
// sinks.Config, its type builds the store; it may implement SetDefaults() and
// Validate() error, which the config loader calls.
type Config interface {
	Build(ctx context.Context, log *slog.Logger) (Store, error)
}

var (
	mu       sync.RWMutex
	registry = map[string]func() Config{}
)

// Register makes a store type available under name; called from init.
func Register(name string, newConfig func() Config) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("checkpoint: Register called twice for " + name)
	}
	registry[name] = newConfig
}

// New returns a fresh, zero config for the store type name.
func New(name string) (Config, error) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown checkpoint type %q (known: %v)", name, typesLocked())
	}
	return f(), nil
}

// Types lists the registered store types, sorted.
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
