package event

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

// DigestColumns are the text columns a content digest covers, in order.
var DigestColumns = [...]int{ColAction, ColCategory, ColSeverity, ColTitle, ColActor, ColResource, ColSourceIP, ColDetail, ColExtra}

// RowHasher computes one row's content digest from its values fed in
// order: Begin with the timestamp, then per column of DigestColumns Null or
// Length followed by Write of the value's bytes. The decoder and
// RowDigester both use it, so a record and its row read back agree.
type RowHasher struct {
	h   maphash.Hash
	buf [binary.MaxVarintLen64 + 1]byte
}

// Begin starts a row at its timestamp in microseconds.
func (r *RowHasher) Begin(tsMicros int64) {
	r.h.SetSeed(idSeeds[0])
	binary.LittleEndian.PutUint64(r.buf[:8], uint64(tsMicros))
	r.h.Write(r.buf[:8])
}

// Null marks a null value.
func (r *RowHasher) Null() { r.h.WriteByte(0) }

// Length starts a value of n bytes; Write feeds them.
func (r *RowHasher) Length(n int) {
	r.buf[0] = 1
	k := binary.PutUvarint(r.buf[1:], uint64(n))
	r.h.Write(r.buf[:1+k])
}

// Write feeds a value's bytes.
func (r *RowHasher) Write(b []byte) { r.h.Write(b) }

// Sum is the row's digest.
func (r *RowHasher) Sum() uint64 { return r.h.Sum64() }

// RowDigester computes content digests of rows read back from a sink, in
// Schema. It is not safe for concurrent use.
type RowDigester struct {
	h    RowHasher
	ts   *array.Timestamp
	cols [len(DigestColumns)]*array.String
}

// Reset points the digester at rec, which must be in Schema (as read back
// from Parquet: plain strings, microsecond timestamps).
func (r *RowDigester) Reset(rec arrow.RecordBatch) bool {
	ts, ok := rec.Column(ColTimestamp).(*array.Timestamp)
	if !ok {
		return false
	}
	r.ts = ts
	for i, c := range DigestColumns {
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
	r.h.Begin(int64(r.ts.Value(i)))
	for _, col := range r.cols {
		if col.IsNull(i) {
			r.h.Null()
			continue
		}
		v := col.Value(i)
		r.h.Length(len(v))
		r.h.h.WriteString(v)
	}
	return r.h.Sum()
}
