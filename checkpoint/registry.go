package checkpoint

import (
	"context"
	"log/slog"

	reg "github.com/vaultsink/vaultsink/internal/registry"
)

// Config is one store type's configuration section (`checkpoint:`). Like
// sinks.Config, its type builds the store; it may implement SetDefaults() and
// Validate() error, which the config loader calls.
type Config interface {
	Build(ctx context.Context, log *slog.Logger) (Store, error)
}

var registry = reg.New[Config]("checkpoint")

// Register makes a store type available under name (the `type:` value). It is
// called from the type's package init; registering a name twice panics.
func Register(name string, newConfig func() Config) { registry.Register(name, newConfig) }

// New returns a fresh, zero config for the checkpoint type name.
func New(name string) (Config, error) { return registry.New(name) }

// Types lists the registered checkpoint types, sorted.
func Types() []string { return registry.Types() }
