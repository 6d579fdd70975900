package pqenc

import (
	"encoding/binary"
	"hash/maphash"
	"slices"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Dictionary columns, encoded once per row group.
//
// Handed plain strings, arrow-go dictionary-encodes every value through its
// generic memo table (an interface conversion, an allocation and a hash per
// value), which for the seven dictionary columns is a large share of a
// sync's CPU. Instead each dictionary column of the current row group is
// gathered here — a map from value to index, the indexes, a validity
// bitmap — and at the end of the row group written as one dictionary page
// and the pages of its indexes (finishDict, columns.go); its statistics
// come from the dictionary's values, all of them in use.
//
// A column whose dictionary grows past the writer's dictionary page limit
// (1 MiB) in a row group gives up for that row group: what was gathered
// and the rest of the row group are written as plain strings.

// dictColumn gathers one dictionary column of the current row group.
type dictColumn struct {
	// index maps a value's hash to its index, and overflow a value whose
	// hash is already another value's (about never). Keyed by hash, the
	// map holds no pointers: the garbage collector does not scan it, and
	// no key is allocated. Keyed by strings, the few thousand values of a
	// row group would be most of the live heap objects that every
	// collection marks, each a fresh allocation in every row group.
	index    map[uint64]int32
	overflow map[string]int32
	offsets  []int32 // dictionary value i is data[offsets[i]:offsets[i+1]]
	data     []byte
	idx      []int32 // per row; 0 where null
	valid    []byte  // validity bitmap, a bit per row
	rows     int
	nulls    int
	dense    bool                           // gave up for this row group: values go straight to arrow-go
	cache    [1 << dictCacheBits]cacheEntry // see indexes
}

func newDictColumn() *dictColumn {
	return &dictColumn{index: map[uint64]int32{}, offsets: []int32{0}}
}

// Dictionary columns outlive their Writer. A new one costs its cache
// (96 KiB, zeroed) and buffers regrown from nothing for the first row
// group, and an hourly sync opens a file per window; so a closed Writer's
// columns wait in dictFree for the next. At most maxIdleDictColumns wait,
// and none that a freak row group grew past retainDictBytes of buffers or
// retainDictValues distinct values (its map keeps the room it grew).
var dictFree = freeList[dictColumn]{max: maxIdleDictColumns}

const (
	maxIdleDictColumns = 14 // two files' worth
	retainDictBytes    = 1 << 20
	retainDictValues   = 1 << 14
)

func getDictColumn() *dictColumn { return dictFree.get(newDictColumn) }

// putDictColumn takes back a column no Writer uses any more.
func putDictColumn(d *dictColumn) {
	if 4*cap(d.idx) > retainDictBytes || cap(d.data) > retainDictBytes || cap(d.offsets) > retainDictValues+1 {
		return
	}
	d.reset()
	dictFree.put(d)
}

// reset empties d for the next row group, keeping its buffers.
func (d *dictColumn) reset() {
	clear(d.index)
	d.overflow = nil
	d.offsets = d.offsets[:1]
	d.data = d.data[:0]
	d.idx = d.idx[:0]
	d.valid = d.valid[:0]
	d.rows, d.nulls = 0, 0
	d.dense = false
	clear(d.cache[:])
}

// add gathers the rows of a string array.
func (d *dictColumn) add(arr *array.String) {
	n := arr.Len()
	if n == 0 {
		return // an empty array may have no offsets buffer at all
	}
	for range bitutil.BytesForBits(int64(d.rows+n)) - int64(len(d.valid)) {
		d.valid = append(d.valid, 0)
	}
	base := len(d.idx)
	d.idx = slices.Grow(d.idx, n)[:base+n]
	idx := d.idx[base:]
	offs := arr.ValueOffsets()[:n+1] // into the whole data buffer, also for a slice
	var data []byte
	if b := arr.Data().Buffers()[2]; b != nil {
		data = b.Bytes()
	}
	if arr.NullN() == 0 {
		bitutil.SetBitsTo(d.valid, int64(d.rows), int64(n), true)
		d.indexes(idx, offs, data)
	} else {
		for i := range idx {
			if arr.IsNull(i) {
				idx[i] = 0
				d.nulls++
				continue
			}
			bitutil.SetBit(d.valid, d.rows+i)
			d.indexes(idx[i:i+1], offs[i:i+2], data)
		}
	}
	d.rows += n
}

// indexes sets idx[i] to the dictionary index of data[offs[i]:offs[i+1]],
// adding new values to the dictionary.
//
// The map (lookup) is the authority, but most rows never reach it: a
// direct-mapped cache keyed by a few words of the value (its first, last
// and, past 16 bytes, middle eight bytes, and its length) remembers the
// index the map gave. A value of up to 16 bytes is wholly in those words
// and its slot (cacheSlot), so they alone confirm a hit; a longer one is
// compared with the dictionary's bytes. The map hashes every byte and
// probes a table, where a hit here is a few loads and compares; the
// instruction counts are in bench/DECISIONS.md.
func (d *dictColumn) indexes(idx, offs []int32, data []byte) {
	cache := &d.cache
	for i := range idx {
		s, e := int(offs[i]), int(offs[i+1])
		v := data[s:e]
		n := len(v)
		var a, b uint64
		switch {
		case n >= 8:
			a = binary.LittleEndian.Uint64(v)
			b = binary.LittleEndian.Uint64(v[n-8:])
		case s+8 <= len(data):
			a = binary.LittleEndian.Uint64(data[s:]) & (1<<(8*n) - 1)
		default:
			a = tailWord(v)
		}
		m := a
		if n > 16 {
			m ^= binary.LittleEndian.Uint64(v[n/2-4:]) * 0x9e3779b97f4a7c15
		}
		c := &cache[cacheSlot(m, b, n)]
		if c.a == a && c.b == b && c.k > 0 &&
			(n <= 16 || string(d.data[d.offsets[c.k-1]:d.offsets[c.k]]) == string(v)) {
			idx[i] = c.k - 1
			continue
		}
		k := d.lookup(v)
		*c = cacheEntry{a: a, b: b, k: k + 1}
		idx[i] = k
	}
}

// cacheSlot mixes a value's words and length into a cache slot. The
// length (mod 256) moves the slot's top eight bits through a bijection, so
// two values with equal words share a slot only if their lengths are
// equal too: a value of up to 16 bytes is then identified by its slot and
// words, and the entry need not hold the length.
func cacheSlot(m, b uint64, n int) uint64 {
	return ((m^uint64(n)<<56)*0xff51afd7ed558ccd ^ b*0xc4ceb9fe1a85ec53) >> (64 - dictCacheBits)
}

// lookup returns v's dictionary index from the map, adding v if new.
func (d *dictColumn) lookup(v []byte) int32 {
	h := maphash.Bytes(dictSeed, v)
	k, ok := d.index[h]
	if !ok {
		k = d.append(v)
		d.index[h] = k
		return k
	}
	if string(d.data[d.offsets[k]:d.offsets[k+1]]) == string(v) {
		return k
	}
	// another value has v's hash
	if k, ok := d.overflow[string(v)]; ok {
		return k
	}
	if d.overflow == nil {
		d.overflow = map[string]int32{}
	}
	k = d.append(v)
	d.overflow[string(v)] = k
	return k
}

// dictSeed seeds the dictionaries' hash; any seed will do, as every hit
// is confirmed by comparing bytes.
var dictSeed = maphash.MakeSeed()

// append adds v to the dictionary and returns its index.
func (d *dictColumn) append(v []byte) int32 {
	k := int32(len(d.offsets) - 1)
	d.data = append(d.data, v...)
	d.offsets = append(d.offsets, int32(len(d.data)))
	return k
}

// tailWord packs a value of fewer than 8 bytes into a word, zero-padded:
// for values at the very end of a buffer, where an 8-byte load would not fit.
func tailWord(v []byte) uint64 {
	var w uint64
	for i, c := range v {
		w |= uint64(c) << (8 * i)
	}
	return w
}

// dictCacheBits sizes dictColumn's cache: 4096 slots of 24 bytes, enough
// for the few thousand actors or resources of a row group. That is 96 KiB
// per dictionary column, 672 KiB per open file, cleared per row group
// (and kept between files: dictFree).
const dictCacheBits = 12

const _ = uint(dictCacheBits - 8) // cacheSlot's length argument needs 8 bits of slot

// cacheEntry is a cached value's words (see indexes) and its index + 1
// (0: empty).
type cacheEntry struct {
	a, b uint64
	k    int32
}

// denseArray returns the gathered rows as plain strings (a copy).
func (d *dictColumn) denseArray(mem memory.Allocator) arrow.Array {
	b := array.NewStringBuilder(mem)
	defer b.Release()
	b.Reserve(d.rows)
	for row := range d.rows {
		if !bitutil.BitIsSet(d.valid, row) {
			b.AppendNull()
			continue
		}
		k := d.idx[row]
		b.BinaryBuilder.Append(d.data[d.offsets[k]:d.offsets[k+1]])
	}
	return b.NewArray()
}
