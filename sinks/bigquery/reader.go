package bigquery

import (
	"context"
	"time"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// EventIDs lists the event ids the target holds for w with one query.
func (s *Sink) EventIDs(ctx context.Context, w source.Window, fn func(id string) error) error {
	return s.UnitRows(ctx, sinks.UnitInfo{Key: s.target(), Window: w}, func(id string, _ time.Time) error { return fn(id) })
}
