package source

import (
	"encoding/binary"
	"hash/maphash"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// A row's content digest tells whether an event the sink holds came back
// from the API with other content. It covers the timestamp and every text
// column from action to extra; not event_id (the key), org_id (one per
// org) or ingested_at (when vaultsink wrote the row). The decoder computes
// it from a record's values and the sinks from the rows they read back, so
// both feed the same bytes to the same hash: the timestamp in µs, then per
// column a null marker or the value's length and bytes.

// digestColumns are the text columns a content digest covers, in order.
var digestColumns = [...]int{ColAction, ColCategory, ColSeverity, ColTitle, ColActor, ColResource, ColSourceIP, ColDetail, ColExtra}

type rowHasher struct {
	h   maphash.Hash
	buf [binary.MaxVarintLen64 + 1]byte
}

func (r *rowHasher) begin(tsMicros int64) {
	r.h.SetSeed(idSeeds[0])
	binary.LittleEndian.PutUint64(r.buf[:8], uint64(tsMicros))
	r.h.Write(r.buf[:8])
}

func (r *rowHasher) null() { r.h.WriteByte(0) }

func (r *rowHasher) length(n int) {
	r.buf[0] = 1
	k := binary.PutUvarint(r.buf[1:], uint64(n))
	r.h.Write(r.buf[:1+k])
}

func (r *rowHasher) sum() uint64 { return r.h.Sum64() }

// rowDigest is the content digest of a record being decoded.
func (d *Decoder) rowDigest(b []byte, ts int64, vals *[NumColumns]span) uint64 {
	d.rowHash.begin(ts)
	for _, c := range digestColumns {
		if s := vals[c]; s.where == spanNull {
			d.rowHash.null()
		} else {
			v := d.bytesOf(b, s)
			d.rowHash.length(len(v))
			d.rowHash.h.Write(v)
		}
	}
	return d.rowHash.sum()
}

// RowDigester computes content digests of rows read back from a sink, in
// Schema. It is not safe for concurrent use.
type RowDigester struct {
	h    rowHasher
	ts   *array.Timestamp
	cols [len(digestColumns)]*array.String
}

// Reset points the digester at rec, which must be in Schema (as read back
// from Parquet: plain strings, microsecond timestamps).
func (r *RowDigester) Reset(rec arrow.RecordBatch) bool {
	ts, ok := rec.Column(ColTimestamp).(*array.Timestamp)
	if !ok {
		return false
	}
	r.ts = ts
	for i, c := range digestColumns {
		col, ok := rec.Column(c).(*array.String)
		if !ok {
			return false
		}
		r.cols[i] = col
	}
	return true
}

// Digest is the content digest of row i of the batch given to Reset.
func (r *RowDigester) Digest(i int) uint64 {
	r.h.begin(int64(r.ts.Value(i)))
	for _, col := range r.cols {
		if col.IsNull(i) {
			r.h.null()
			continue
		}
		v := col.Value(i)
		r.h.length(len(v))
		r.h.h.WriteString(v)
	}
	return r.h.sum()
}

// foreign remembers the org field of the page's first org-mismatched record.
func (d *Decoder) foreign(v []byte) {
	if d.pg.ForeignOrg == "" {
		const max = 128 // it goes into an error message
		if len(v) > max {
			v = v[:max]
		}
		d.pg.ForeignOrg = string(v)
		if d.pg.ForeignOrg == "" {
			d.pg.ForeignOrg = `""`
		}
	}
}
