package bigquery

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// contentDigest is a digest of a set of rows that depends only on their
// values, not on their order nor on ingested_at (the time of the pull,
// which a rerun changes): a rerun that pulls the same events gets the same
// digest, so the same job ids. Each row is hashed alone; the row hashes
// are added lane by lane (mod 2^64), which no reordering changes.
type contentDigest struct {
	h    hash.Hash
	buf  []byte
	sum  [4]uint64
	rows int64
}

func newContentDigest() *contentDigest { return &contentDigest{h: sha256.New()} }

func (d *contentDigest) addRow(row []byte) {
	d.h.Reset()
	d.h.Write(row)
	var s [sha256.Size]byte
	d.h.Sum(s[:0])
	for i := range d.sum {
		d.sum[i] += binary.LittleEndian.Uint64(s[8*i:])
	}
	d.rows++
}

// addRecord adds every row of rec (event.Schema) but its ingested_at.
func (d *contentDigest) addRecord(rec arrow.RecordBatch) {
	cols := make([]arrow.Array, event.NumColumns)
	for c := range cols {
		cols[c] = rec.Column(c)
	}
	for i := 0; i < int(rec.NumRows()); i++ {
		b := d.buf[:0]
		for c, col := range cols {
			if c == event.ColIngestedAt {
				continue
			}
			if col.IsNull(i) {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			switch a := col.(type) {
			case *array.String:
				b = binary.AppendUvarint(b, uint64(len(a.Value(i))))
				b = append(b, a.Value(i)...)
			case *array.Timestamp:
				b = binary.LittleEndian.AppendUint64(b, uint64(a.Value(i)))
			default:
				v := col.ValueStr(i)
				b = binary.AppendUvarint(b, uint64(len(v)))
				b = append(b, v...)
			}
		}
		d.buf = b
		d.addRow(b)
	}
}

// addQuarantined adds one quarantined record.
func (d *contentDigest) addQuarantined(q event.Quarantined) {
	b := binary.AppendVarint(d.buf[:0], int64(q.Page))
	b = binary.AppendUvarint(b, uint64(len(q.Reason)))
	b = append(b, q.Reason...)
	b = append(b, q.Raw...)
	d.buf = b
	d.addRow(b)
}

// String is the digest; "" when no row was added.
func (d *contentDigest) String() string {
	if d == nil || d.rows == 0 {
		return ""
	}
	var b []byte
	for _, x := range d.sum {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(d.rows))
	return hex.EncodeToString(b)
}
