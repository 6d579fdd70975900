package local

import (
	"context"

	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/sinks"
)

var _ sinks.Checker = (*Config)(nil)

// Check checks the data and quarantine directories as New and the units
// would use them, without creating them (New creates the root, a commit
// the rest): each exists and is writable (and its lock file, if there,
// opens for writing), or its nearest existing parent is writable.
func (c *Config) Check(ctx context.Context, section string) []check.Result {
	cc := *c
	cc.SetDefaults()
	return []check.Result{
		check.Dir(cc.Path, section+".path", ".vaultsink.lock"),
		check.Dir(cc.QuarantinePath, section+".quarantine_path"),
	}
}
