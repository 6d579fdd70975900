package pqenc

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// TestDictColumnIndexes checks dictColumn's cached lookup against the
// values themselves, on values built to defeat the cache's words: long
// values equal in their first, middle and last eight bytes and length
// (only the full comparison tells them apart), short values that differ
// only in length ("a" and "a\x00"), values at the very end of a buffer,
// empty values, nulls, and sliced arrays.
func TestDictColumnIndexes(t *testing.T) {
	var vals []string
	for i := range 40 {
		// n = 30: the words cover bytes 0-7, 11-18 and 22-29; bytes 8-9 vary.
		vals = append(vals, "prefix__"+string(rune('a'+i%26))+fmt.Sprint(i/26)+strings.Repeat("m", 11)+"x__suffix")
	}
	vals = append(vals, "", "a", "a\x00", "a\x00\x00", "ab", "ba", "abcdefg", "abcdefgh", "abcdefgh\x00",
		"0123456789abcdef", "0123456789abcdeF", "0123456789abcdef0", strings.Repeat("z", 24), strings.Repeat("z", 25))
	for _, v := range vals[:40] {
		if len(v) != 30 {
			t.Fatalf("test value %q is %d bytes, want 30", v, len(v))
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	d := newDictColumn()
	var want []*string
	for batch := range 50 {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		rows := 1 + r.IntN(200)
		var these []*string
		for range rows {
			if r.IntN(10) == 0 {
				b.AppendNull()
				these = append(these, nil)
				continue
			}
			v := vals[r.IntN(len(vals))]
			b.Append(v)
			these = append(these, &v)
		}
		arr := b.NewStringArray()
		b.Release()
		if batch%3 == 1 && rows > 2 { // a slice: offsets into the middle of the buffer
			s := array.NewSlice(arr, 1, int64(rows-1)).(*array.String)
			arr.Release()
			arr, these = s, these[1:rows-1]
		}
		d.add(arr)
		arr.Release()
		want = append(want, these...)
		if batch == 30 { // a new row group
			check(t, d, want)
			d.reset()
			want = nil
		}
	}
	check(t, d, want)

	// an empty array without buffers adds nothing
	empty := array.NewStringData(array.NewData(arrow.BinaryTypes.String, 0, []*memory.Buffer{nil, nil, nil}, nil, 0, 0))
	defer empty.Release()
	d.add(empty)
	check(t, d, want)
}

func check(t *testing.T, d *dictColumn, want []*string) {
	t.Helper()
	if d.rows != len(want) || len(d.idx) != len(want) {
		t.Fatalf("rows %d, indexes %d, want %d", d.rows, len(d.idx), len(want))
	}
	seen := map[string]bool{}
	for k := range len(d.offsets) - 1 {
		v := string(d.data[d.offsets[k]:d.offsets[k+1]])
		if seen[v] {
			t.Fatalf("dictionary holds %q twice", v)
		}
		seen[v] = true
	}
	nulls := 0
	for row, w := range want {
		valid := d.valid[row/8]&(1<<(row%8)) != 0
		if w == nil {
			nulls++
			if valid {
				t.Fatalf("row %d: null marked valid", row)
			}
			continue
		}
		k := d.idx[row]
		if got := string(d.data[d.offsets[k]:d.offsets[k+1]]); !valid || got != *w {
			t.Fatalf("row %d: index %d is %q (valid %v), want %q", row, k, got, valid, *w)
		}
	}
	if nulls != d.nulls {
		t.Fatalf("nulls %d, want %d", d.nulls, nulls)
	}
}

// TestDictHashCollision forges a hash collision (the index claims y's hash
// for x) and checks that y still gets an index of its own, found again on
// later rows, with the cache cleared so that every row goes to the map.
func TestDictHashCollision(t *testing.T) {
	x, y := "alice@org1.example", "bob@org1.example"
	d := newDictColumn()
	add := func(vals ...string) {
		b := array.NewStringBuilder(memory.DefaultAllocator)
		defer b.Release()
		b.AppendValues(vals, nil)
		arr := b.NewStringArray()
		defer arr.Release()
		d.add(arr)
		clear(d.cache[:])
	}
	add(x)
	d.index[maphash.String(dictSeed, y)] = d.index[maphash.String(dictSeed, x)]
	add(y, x, y)
	add(y)
	if len(d.overflow) != 1 {
		t.Fatalf("overflow holds %d values, want 1 (y)", len(d.overflow))
	}
	check(t, d, []*string{&x, &y, &x, &y, &y})
}

// takeDictFree empties the free list of dictionary columns for a test and
// puts back what was there when it ends.
func takeDictFree(t *testing.T) { takeFree(t, &dictFree) }

func idleDictColumns() []*dictColumn { return idleIn(&dictFree) }

// takeFree empties f for a test and puts back what was there when it ends.
func takeFree[T any](t *testing.T, f *freeList[T]) {
	f.mu.Lock()
	saved := f.items
	f.items = nil
	f.mu.Unlock()
	t.Cleanup(func() {
		f.mu.Lock()
		f.items = saved
		f.mu.Unlock()
	})
}

// idleIn returns what waits in f.
func idleIn[T any](f *freeList[T]) []*T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.items)
}

// TestDictColumnsReused: a closed or aborted Writer's dictionary columns go
// to the next Writer, emptied: its file is byte for byte the one fresh
// columns make, also after an Abort in the middle of a row group (rows
// gathered, not written).
func TestDictColumnsReused(t *testing.T) {
	takeDictFree(t)
	opts := Options{RowGroupRows: 2500}
	fresh := encodeWith(t, 2, opts, 1000, 2000, 7) // its columns are new
	first := idleDictColumns()
	if len(first) != len(event.DictionaryColumns) {
		t.Fatalf("%d dictionary columns idle after Close, want %d", len(first), len(event.DictionaryColumns))
	}
	for _, d := range first {
		if d.rows != 0 || len(d.index) != 0 || len(d.data) != 0 || d.cache != ([1 << dictCacheBits]cacheEntry{}) {
			t.Fatal("an idle dictionary column was not emptied")
		}
	}

	// Other values first, so the reused columns held different dictionaries.
	encodeWith(t, 2, opts, 700, 4100)
	again := encodeWith(t, 2, opts, 1000, 2000, 7)
	if !bytes.Equal(again, fresh) {
		t.Fatalf("reused dictionary columns wrote a different file (%d vs %d bytes)", len(again), len(fresh))
	}
	for _, d := range idleDictColumns() {
		if !slices.Contains(first, d) {
			t.Fatal("a new dictionary column was made though idle ones waited")
		}
	}

	// Abort with 500 rows gathered in the open row group.
	var buf bytes.Buffer
	w, err := newWriterWorkers(&buf, Meta{Window: testWindow, Version: "test"}, opts, memory.DefaultAllocator, 2)
	if err != nil {
		t.Fatal(err)
	}
	rec := nullyBatch(memory.DefaultAllocator, 50_000, 3000)
	err = w.Write(rec)
	rec.Release()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.flushPending(); err != nil {
		t.Fatal(err)
	}
	gathered := 0
	for _, c := range w.cols {
		if c.dict != nil {
			gathered += c.dict.rows
		}
	}
	if gathered == 0 {
		t.Fatal("test setup: no rows gathered before the Abort")
	}
	w.Abort()
	if got := encodeWith(t, 2, opts, 1000, 2000, 7); !bytes.Equal(got, fresh) {
		t.Fatal("dictionary columns reused after an Abort wrote a different file")
	}
}

// TestDictColumnsNotHoarded: the free list keeps at most two files' worth,
// and no column a freak row group grew past retainDictBytes.
func TestDictColumnsNotHoarded(t *testing.T) {
	takeDictFree(t)
	for range 3 * maxIdleDictColumns {
		putDictColumn(newDictColumn())
	}
	if n := len(idleDictColumns()); n != maxIdleDictColumns {
		t.Fatalf("%d idle dictionary columns, want %d", n, maxIdleDictColumns)
	}
	takeDictFree(t)
	big := newDictColumn()
	big.idx = make([]int32, 0, retainDictBytes/4+1)
	putDictColumn(big)
	many := newDictColumn()
	many.offsets = make([]int32, 1, retainDictValues+2)
	putDictColumn(many)
	if n := len(idleDictColumns()); n != 0 {
		t.Fatal("a dictionary column grown past the retain limits was kept")
	}
	fine := newDictColumn()
	fine.idx = make([]int32, 0, retainDictBytes/4)
	fine.offsets = make([]int32, 1, retainDictValues+1)
	putDictColumn(fine)
	if n := len(idleDictColumns()); n != 1 {
		t.Fatal("a dictionary column within the retain limits was not kept")
	}
}
