package source

import (
	"fmt"
	"math"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The decoder's last step: a page's cells into Arrow arrays, one column at
// a time.

// materialize fills the builders column by column from the page's cells:
// one exact reservation per column, then unchecked appends, each column's
// buffer written front to back.
func (d *Decoder) materialize(body []byte) arrow.RecordBatch {
	rows := d.appended
	cols := make([]arrow.Array, event.NumColumns)
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for c := range event.NumColumns {
		switch c {
		case event.ColTimestamp:
			cols[c] = d.timestamps(d.tsv[:rows], 0, false)
		case event.ColIngestedAt:
			cols[c] = d.timestamps(nil, d.ingUS, true)
		default:
			cols[c] = d.strings(body, c, rows)
		}
	}
	return array.NewRecordBatch(event.Schema, cols, int64(rows))
}

// strings builds string column c of the page's rows straight from the
// spans: one offsets buffer, one data buffer and, if a row is null, a
// validity bitmap, sized from the spans. (A BinaryBuilder would append
// value by value, each a call and a capacity check, regrowing as it goes:
// a visible share of a sync's CPU.)
func (d *Decoder) strings(body []byte, c, rows int) arrow.Array {
	offBuf := d.buffer(arrow.Int32Traits.BytesRequired(rows + 1))
	offs := arrow.Int32Traits.CastFromBytes(offBuf.Bytes())
	var dataBuf *memory.Buffer
	var validity *memory.Buffer
	nulls := 0
	if c == event.ColOrgID {
		n := len(d.orgB)
		dataBuf = d.buffer(rows * n)
		data := dataBuf.Bytes()
		for r := range rows {
			offs[r] = int32(r * n)
			copy(data[r*n:], d.orgB)
		}
		offs[rows] = int32(rows * n)
	} else {
		total := d.colBytes[c]
		if total > math.MaxInt32 { // max_page_bytes (MaxPageBytesLimit) rules this out
			panic(fmt.Sprintf("source: column %d of a page holds %d bytes, more than Arrow's 32-bit offsets address", c, total))
		}
		dataBuf = d.buffer(total)
		data := dataBuf.Bytes()
		// The validity bitmap is made when the first null shows up.
		var bits []byte
		at := 0
		for row, r := 0, c; r < len(d.cells); row, r = row+1, r+event.NumColumns {
			offs[row] = int32(at)
			s := d.cells[r]
			if s.where == spanNull {
				if bits == nil {
					validity = memory.NewResizableBuffer(d.mem)
					validity.Resize(int(bitutil.BytesForBits(int64(rows))))
					bits = validity.Bytes()
					clear(bits)
					bitutil.SetBitsTo(bits, 0, int64(row), true)
				}
				nulls++
				continue
			}
			at += copy(data[at:], d.bytesOf(body, s))
			if bits != nil {
				bitutil.SetBit(bits, row)
			}
		}
		offs[rows] = int32(at)
	}
	data := array.NewData(arrow.BinaryTypes.String, rows, []*memory.Buffer{validity, offBuf, dataBuf}, nil, nulls, 0)
	offBuf.Release()
	dataBuf.Release()
	if validity != nil {
		validity.Release()
	}
	defer data.Release()
	return array.NewStringData(data)
}

// buffer returns an Arrow buffer of n bytes from d.mem for a column the
// caller writes in full: from an allocator that offers it (bufpool), its
// memory is not zeroed first.
func (d *Decoder) buffer(n int) *memory.Buffer {
	if u, ok := d.mem.(interface{ AllocateUnzeroed(int) []byte }); ok {
		return memory.NewBufferWithAllocator(u.AllocateUnzeroed(n), d.mem)
	}
	b := memory.NewResizableBuffer(d.mem)
	b.Resize(n)
	return b
}

// timestamps builds a timestamp column from vals, or of d.appended copies
// of one value when fill is set.
func (d *Decoder) timestamps(vals []arrow.Timestamp, one int64, fill bool) arrow.Array {
	rows := d.appended
	buf := d.buffer(arrow.TimestampTraits.BytesRequired(rows))
	out := arrow.TimestampTraits.CastFromBytes(buf.Bytes())
	if fill {
		for r := range out {
			out[r] = arrow.Timestamp(one)
		}
	} else {
		copy(out, vals)
	}
	data := array.NewData(event.TimestampType, rows, []*memory.Buffer{nil, buf}, nil, 0, 0)
	buf.Release()
	defer data.Release()
	return array.NewTimestampData(data)
}
