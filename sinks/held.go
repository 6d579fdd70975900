package sinks

import (
	"errors"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// WriteNew writes the rows of rec whose id held does not hold, in runs, and
// returns how many it wrote. Rows with a held id are marked met in held and
// skipped: the held copy wins (a walk already skips them; this keeps the
// contract for any caller). With nothing held it writes rec as it is.
func WriteNew(rec arrow.RecordBatch, held *event.HeldSet, write func(arrow.RecordBatch) error) (int64, error) {
	n := rec.NumRows()
	if held.Len() == 0 {
		return n, write(rec)
	}
	ids, ok := rec.Column(event.ColEventID).(*array.String)
	var rd event.RowDigester
	if !ok || !rd.Reset(rec) {
		return 0, errors.New("batch is not in event.Schema")
	}
	var written int64
	run := int64(-1) // start of the current run of new rows
	flush := func(end int64) error {
		if run < 0 {
			return nil
		}
		part := rec
		if run > 0 || end < n {
			part = rec.NewSlice(run, end)
			defer part.Release()
		}
		written += end - run
		run = -1
		return write(part)
	}
	for i := range n {
		if held.MeetRow(ids.Value(int(i)), &rd, int(i)) {
			if err := flush(i); err != nil {
				return written, err
			}
			continue
		}
		if run < 0 {
			run = i
		}
	}
	return written, flush(n)
}
