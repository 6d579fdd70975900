package bigquery

import (
	"context"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/sinks"
)

// EventIDs lists the event ids the target holds for w with one query.
func (s *Sink) EventIDs(ctx context.Context, w event.Window, fn func(id string) error) error {
	return s.UnitRows(ctx, sinks.UnitInfo{Key: s.target(), Window: w}, func(id string, _ time.Time) error { return fn(id) })
}
