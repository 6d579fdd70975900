// Package bufpool is an Arrow memory.Allocator that keeps the buffers it
// is handed back and gives them out again.
//
// Arrow's Go allocator leaves freed buffers to the garbage collector, so a
// sync would allocate a gigabyte or so per million events, all of it
// short-lived: each decoded page's column buffers (~300 KB, freed once the
// page is encoded), and every byte of it brings the next collection
// nearer. A Pool hands a freed buffer to the next request of its size
// class instead: the decoder's next page reuses what the encoder just
// released. That makes a sync allocate less, collect less often and run
// fewer instructions, for a few MiB more peak RSS (the idle buffers); the
// figures are in bench/DECISIONS.md.
//
// A Pool is only as safe as its callers: a buffer must not be used after
// it is freed (Arrow's contract for every allocator, which the garbage
// collector otherwise forgives). Builds with the race detector, which is
// how `make test` runs, poison every freed buffer and panic on a double
// free, so that the whole suite (Parquet read back by DuckDB, the
// end-to-end syncs) would see a use after free as corrupt values.
package bufpool

import (
	"math/bits"
	"sync"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Size classes are powers of two from 4 KiB to 16 MiB. Smaller requests
// are cheap for the Go allocator and too many to be worth a lock; larger
// ones are rare (a freak page) and would pin too much.
const (
	minShift = 12
	maxShift = 24
)

// DefaultLimit bounds the bytes a Pool keeps idle: a few decoded pages
// or a row group's worth of buffers. Idle buffers are live heap to the
// garbage collector and resident memory, so a larger pool costs peak RSS
// while saving no work once the pages in flight fit (limits compared in
// bench/DECISIONS.md).
const DefaultLimit = 8 << 20

// Default is the process's pool: the decoder allocates its Arrow buffers
// from it and the Parquet writer its encoding buffers, so what one frees
// the other reuses.
var Default = newPool(DefaultLimit, debug)

// Pool is a memory.Allocator that recycles freed buffers by size class.
// It is safe for concurrent use. Allocate returns zeroed memory, as every
// Arrow allocator does; a recycled buffer is cleared when it is given out.
type Pool struct {
	mu    sync.Mutex
	free  [maxShift + 1][][]byte // idle buffers by class, each of cap 1<<class
	idle  int                    // bytes in free
	limit int

	live map[*byte]bool // debug builds: buffers given out (nil otherwise)
}

// New returns a Pool keeping at most limit bytes idle. In builds with the
// race detector it checks lifetimes (see the package comment).
func New(limit int) *Pool { return newPool(limit, debug) }

func newPool(limit int, checked bool) *Pool {
	p := &Pool{limit: limit}
	if checked {
		p.live = map[*byte]bool{}
	}
	return p
}

var _ memory.Allocator = (*Pool)(nil)

// class is the size class of a request of n bytes, or -1 if none.
func class(n int) int {
	if n <= 1<<minShift-1 || n > 1<<maxShift {
		return -1
	}
	return bits.Len(uint(n - 1))
}

// Allocate returns n zeroed bytes; their capacity is the size class.
func (p *Pool) Allocate(n int) []byte {
	b, recycled := p.get(n)
	if recycled {
		clear(b)
	}
	return b
}

// AllocateUnzeroed is Allocate for a caller that writes every one of the
// n bytes before reading any: a recycled buffer is not cleared first. The
// decoder fills its column buffers so, and clearing them would be a second
// pass over ~300 KB per page.
func (p *Pool) AllocateUnzeroed(n int) []byte {
	b, _ := p.get(n)
	return b
}

// get returns n bytes, recycled (as they were freed) or new (zeroed).
func (p *Pool) get(n int) (b []byte, recycled bool) {
	c := class(n)
	if c < 0 {
		return make([]byte, n), false
	}
	if b = p.take(c); b == nil {
		b = make([]byte, n, 1<<c)
	} else {
		b, recycled = b[:n], true
	}
	if p.live != nil {
		p.track(b)
	}
	return b, recycled
}

// take returns an idle buffer of class c, or nil.
func (p *Pool) take(c int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	l := p.free[c]
	if len(l) == 0 {
		return nil
	}
	b := l[len(l)-1]
	l[len(l)-1] = nil
	p.free[c] = l[:len(l)-1]
	p.idle -= cap(b)
	return b
}

// Reallocate grows b to n bytes, keeping its contents; the grown part is
// zeroed. b must not be used afterwards.
func (p *Pool) Reallocate(n int, b []byte) []byte {
	if n <= cap(b) {
		if n > len(b) {
			clear(b[len(b):n])
		}
		return b[:n]
	}
	nb, recycled := p.get(n)
	k := copy(nb, b)
	if recycled {
		clear(nb[k:]) // only what the copy did not overwrite
	}
	p.Free(b)
	return nb
}

// Free takes b back. A buffer not of a size class (not from this Pool) is
// left to the garbage collector, as is any beyond the idle limit.
func (p *Pool) Free(b []byte) {
	c := cap(b)
	k := class(c)
	if k < 0 || c != 1<<k { // not a class's capacity
		return
	}
	b = b[:c]
	if p.live != nil {
		p.untrack(b)
	}
	p.mu.Lock()
	if p.idle+c <= p.limit {
		p.free[k] = append(p.free[k], b)
		p.idle += c
	}
	p.mu.Unlock()
}

// Idle is the number of bytes the Pool keeps for reuse.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

// track and untrack are the debug builds' checks: a buffer is given out
// once and freed once, and a freed buffer is filled with poison.
func (p *Pool) track(b []byte) {
	k := unsafe.SliceData(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live[k] {
		panic("bufpool: a buffer was given out twice")
	}
	p.live[k] = true
}

func (p *Pool) untrack(b []byte) {
	k := unsafe.SliceData(b)
	p.mu.Lock()
	given := p.live[k]
	delete(p.live, k)
	p.mu.Unlock()
	if !given {
		// Not given out by this Pool, or freed twice: a double free
		// would hand one buffer to two owners.
		panic("bufpool: freed a buffer it did not give out, or freed it twice")
	}
	for i := range b {
		b[i] = Poison
	}
}

// Poison fills freed buffers in debug builds.
const Poison = 0xA5
