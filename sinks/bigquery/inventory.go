package bigquery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"cloud.google.com/go/bigquery"
	"google.golang.org/api/iterator"

	"github.com/vaultsink/vaultsink/sinks"
)

var _ sinks.Inventory = (*Sink)(nil)

// Units lists the target table as the one unit that holds the org's rows
// of [from, to): a table has no units of its own, so there is nothing to
// overlap and no key to disagree with. Nothing is queried.
func (s *Sink) Units(ctx context.Context, org string, from, to time.Time) ([]sinks.UnitInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return []sinks.UnitInfo{{Key: s.target(), Window: event.Window{Org: org, Start: from.UTC(), End: to.UTC()}}}, nil
}

// UnitRows calls fn with the event id and timestamp of every row of
// u.Window's org in the target whose timestamp lies in u.Window, one
// query. A caller may narrow u.Window to read a table a window at a time.
func (s *Sink) UnitRows(ctx context.Context, u sinks.UnitInfo, fn func(id string, ts time.Time) error) error {
	w := u.Window
	loc, err := s.resolveLocation(ctx)
	if err != nil {
		return err
	}
	q := s.client.Query(fmt.Sprintf("SELECT event_id, `timestamp` FROM `%s` WHERE org_id = @org AND `timestamp` >= @start AND `timestamp` < @end", s.target()))
	q.Parameters = []bigquery.QueryParameter{
		{Name: "org", Value: w.Org},
		{Name: "start", Value: w.Start.UTC()},
		{Name: "end", Value: w.End.UTC()},
	}
	q.Location = loc
	q.Labels = s.labels("read")
	it, err := q.Read(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil // no table yet: nothing stored
		}
		return fmt.Errorf("query the rows of %s: %w", w, err)
	}
	for {
		var row struct {
			EventID   string    `bigquery:"event_id"`
			Timestamp time.Time `bigquery:"timestamp"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the rows of %s: %w", w, err)
		}
		if err := fn(row.EventID, row.Timestamp.UTC()); err != nil {
			return err
		}
	}
}

// QuarantinedIn calls fn with the org's rows of <table>_quarantine whose
// window_start lies in [from, to), one query.
func (s *Sink) QuarantinedIn(ctx context.Context, org string, from, to time.Time, fn func(event.Quarantined) error) error {
	qt := fmt.Sprintf("%s.%s.%s", s.cfg.Project, s.cfg.Dataset, s.quarantineTable())
	loc, err := s.resolveLocation(ctx)
	if err != nil {
		return err
	}
	q := s.client.Query(fmt.Sprintf("SELECT window_start, window_end, page, reason, raw FROM `%s` WHERE org_id = @org AND window_start >= @start AND window_start < @end", qt))
	q.Parameters = []bigquery.QueryParameter{
		{Name: "org", Value: org},
		{Name: "start", Value: from.UTC()},
		{Name: "end", Value: to.UTC()},
	}
	q.Location = loc
	q.Labels = s.labels("read")
	it, err := q.Read(ctx)
	if err != nil {
		if isNotFound(err) {
			return nil // no quarantine table yet
		}
		return fmt.Errorf("query the quarantine of org %s: %w", org, err)
	}
	for {
		var row struct {
			Start  time.Time           `bigquery:"window_start"`
			End    time.Time           `bigquery:"window_end"`
			Page   int64               `bigquery:"page"`
			Reason bigquery.NullString `bigquery:"reason"`
			Raw    bigquery.NullString `bigquery:"raw"`
		}
		err := it.Next(&row)
		if errors.Is(err, iterator.Done) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the quarantine of org %s: %w", org, err)
		}
		w := event.Window{Org: org, Start: row.Start.UTC(), End: row.End.UTC()}
		if err := fn(event.Quarantined{Org: org, Window: w.Range(), Page: int(row.Page), Reason: row.Reason.StringVal, Raw: row.Raw.StringVal}); err != nil {
			return err
		}
	}
}
