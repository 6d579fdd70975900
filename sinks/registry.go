package sinks

import (
	"log/slog"

	reg "github.com/vaultsink/vaultsink/internal/registry"

	"github.com/prometheus/client_golang/prometheus"
)

// Env is what every sink gets from the daemon when it is built.
type Env struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // never nil: the daemon's registry
	Version    string                // vaultsink version, recorded in file metadata
}

var registry = reg.New[Config]("sink")

// Register makes a sink type available under name (the `type:` value). It is
// called from the type's package init; registering a name twice panics.
func Register(name string, newConfig func() Config) { registry.Register(name, newConfig) }

// New returns a fresh, zero config for the sink type name.
func New(name string) (Config, error) { return registry.New(name) }

// Types lists the registered sink types, sorted.
func Types() []string { return registry.Types() }
