package bufpool

import (
	"bytes"
	"sync"
	"testing"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow/memory"
)

func TestAllocateZeroedAndClassed(t *testing.T) {
	p := newPool(DefaultLimit, false)
	for _, n := range []int{0, 1, 4095, 4096, 4097, 100_000, 1 << 24, 1<<24 + 1} {
		b := p.Allocate(n)
		if len(b) != n {
			t.Fatalf("Allocate(%d): len %d", n, len(b))
		}
		want := n
		if c := class(n); c >= 0 {
			want = 1 << c
		}
		if cap(b) != want {
			t.Errorf("Allocate(%d): cap %d, want %d", n, cap(b), want)
		}
		if bytes.IndexFunc(b, func(r rune) bool { return r != 0 }) >= 0 {
			t.Errorf("Allocate(%d): not zeroed", n)
		}
	}
}

func TestFreedBufferIsReusedZeroed(t *testing.T) {
	p := newPool(DefaultLimit, false)
	b := p.Allocate(5000)
	for i := range b {
		b[i] = 0xFF
	}
	p.Free(b)
	if p.Idle() != 8192 {
		t.Fatalf("idle %d after freeing an 8 KiB-class buffer", p.Idle())
	}
	c := p.Allocate(6000) // same class
	if unsafe.SliceData(c) != unsafe.SliceData(b) {
		t.Fatal("a freed buffer of the class was not reused")
	}
	if bytes.IndexFunc(c, func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatal("a reused buffer was not cleared")
	}
	if p.Idle() != 0 {
		t.Fatalf("idle %d after reuse", p.Idle())
	}
	d := p.Allocate(20000) // another class: a new buffer
	if unsafe.SliceData(d) == unsafe.SliceData(b) {
		t.Fatal("a buffer was handed out twice")
	}
}

func TestReallocateKeepsContents(t *testing.T) {
	p := newPool(DefaultLimit, false)
	b := p.Allocate(4096)
	copy(b, "vaultsink")
	g := p.Reallocate(10000, b) // grows past the class: a new buffer, b freed
	if string(g[:9]) != "vaultsink" || len(g) != 10000 {
		t.Fatalf("grown buffer lost its contents: %q len %d", g[:9], len(g))
	}
	if bytes.IndexFunc(g[9:], func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatal("the grown part is not zeroed")
	}
	if p.Idle() != 4096 {
		t.Fatalf("the outgrown buffer was not taken back: idle %d", p.Idle())
	}
	// Growing onto a recycled buffer: its old bytes past the copy are cleared.
	dirty := p.Allocate(16384)
	for i := range dirty {
		dirty[i] = 0xFF
	}
	p.Free(dirty)
	small := p.Allocate(4096)
	copy(small, "audit")
	r := p.Reallocate(12000, small)
	if unsafe.SliceData(r) != unsafe.SliceData(dirty) {
		t.Fatal("growth did not reuse the idle buffer of its class")
	}
	if string(r[:5]) != "audit" || bytes.IndexFunc(r[5:], func(r rune) bool { return r != 0 }) >= 0 {
		t.Fatalf("grown onto a recycled buffer: contents %q, tail not all zero", r[:5])
	}
	// Within the capacity: the same buffer, the new tail zeroed even if it
	// was written before a shrink.
	g[9999] = 1
	s := p.Reallocate(5000, g)
	s = p.Reallocate(10000, s)
	if unsafe.SliceData(s) != unsafe.SliceData(g) || s[9999] != 0 {
		t.Fatal("reallocating within the capacity must keep the buffer and zero the regrown tail")
	}
}

func TestIdleLimit(t *testing.T) {
	p := newPool(64<<10, false)
	var bs [][]byte
	for range 10 {
		bs = append(bs, p.Allocate(16<<10))
	}
	for _, b := range bs {
		p.Free(b)
	}
	if p.Idle() != 64<<10 {
		t.Fatalf("idle %d, want the 64 KiB limit", p.Idle())
	}
}

func TestForeignBuffersIgnored(t *testing.T) {
	p := newPool(DefaultLimit, false)
	p.Free(make([]byte, 5000))     // not a class size
	p.Free(make([]byte, 2048))     // below the classes
	p.Free(make([]byte, 0, 1<<25)) // above them
	p.Free(nil)
	if p.Idle() != 0 {
		t.Fatalf("idle %d after freeing buffers that are not the pool's", p.Idle())
	}
}

func TestCheckedPoisonsAndCatchesDoubleFree(t *testing.T) {
	p := newPool(DefaultLimit, true)
	b := p.Allocate(4096)
	copy(b, "secret")
	view := b[:6] // a use after free would read this
	p.Free(b)
	if !bytes.Equal(view, bytes.Repeat([]byte{Poison}, 6)) {
		t.Fatalf("freed buffer not poisoned: %q", view)
	}
	mustPanic(t, "double free", func() { p.Free(b) })
	mustPanic(t, "foreign free", func() { p.Free(make([]byte, 8192)) })
	c := p.Allocate(4096)
	if c[0] != 0 {
		t.Fatal("a poisoned buffer was given out without clearing")
	}
	p.Free(c)
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

// TestArrowBuffers drives the pool through Arrow's own buffer type, as the
// decoder and the Parquet writer do: a released buffer's memory comes back.
func TestArrowBuffers(t *testing.T) {
	p := newPool(DefaultLimit, true)
	b := memory.NewResizableBuffer(p)
	b.Resize(300_000)
	copy(b.Bytes(), "page")
	b.Resize(600_000) // regrows: Reallocate
	if string(b.Bytes()[:4]) != "page" {
		t.Fatal("regrown Arrow buffer lost its contents")
	}
	b.Release()
	if p.Idle() != 1<<19+1<<20 {
		t.Fatalf("idle %d, want both classes back", p.Idle())
	}
	if len(p.live) != 0 {
		t.Fatalf("%d buffers still given out", len(p.live))
	}
}

func TestConcurrent(t *testing.T) {
	p := newPool(1<<20, true)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				b := p.Allocate(4096 << ((g + i) % 5))
				b[0] = byte(g)
				if b[len(b)-1] != 0 {
					t.Error("not zeroed")
				}
				p.Free(b)
			}
		}()
	}
	wg.Wait()
	if len(p.live) != 0 {
		t.Fatalf("%d buffers still given out", len(p.live))
	}
}

func TestAllocateUnzeroed(t *testing.T) {
	p := newPool(DefaultLimit, true)
	b := p.AllocateUnzeroed(5000)
	if len(b) != 5000 || cap(b) != 8192 {
		t.Fatalf("len %d cap %d", len(b), cap(b))
	}
	p.Free(b) // poisoned: checked pools fill freed buffers
	c := p.AllocateUnzeroed(6000)
	if unsafe.SliceData(c) != unsafe.SliceData(b) {
		t.Fatal("a freed buffer of the class was not reused")
	}
	if c[0] != Poison || c[5999] != Poison {
		t.Fatal("AllocateUnzeroed cleared a recycled buffer")
	}
	mustPanic(t, "given out twice", func() { p.track(c) })
	p.Free(c)
	if len(p.live) != 0 {
		t.Fatalf("%d buffers still given out", len(p.live))
	}
}
