package bigquery

import (
	"context"
	"errors"
	"fmt"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/vaultsink/vaultsink/source"
)

// EventIDs lists the event ids the target holds for w with one query.
func (s *Sink) EventIDs(ctx context.Context, w source.Window, fn func(id string) error) error {
	q := s.client.Query(fmt.Sprintf("SELECT event_id FROM `%s` WHERE org_id = @org AND `timestamp` >= @start AND `timestamp` < @end", s.target()))
	q.Parameters = []bigquery.QueryParameter{
		{Name: "org", Value: w.Org},
		{Name: "start", Value: w.Start.UTC()},
		{Name: "end", Value: w.End.UTC()},
	}
	q.Location = s.cfg.Location
	it, err := q.Read(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil // no table yet: nothing stored
		}
		return fmt.Errorf("query event ids of %s: %w", w, err)
	}
	for {
		var row struct {
			EventID string `bigquery:"event_id"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read event ids of %s: %w", w, err)
		}
		if err := fn(row.EventID); err != nil {
			return err
		}
	}
}
