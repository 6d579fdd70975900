package runner

import (
	"context"
	"sync"

	"github.com/vaultsink/vaultsink/source"
)

// walk is one window's walk (fetch and decode) running in its own
// goroutine and handing decoded pages through a small channel. Whoever
// holds a walk must either drain pages and then wait on done, or stop it.
type walk struct {
	full   bool // dedup with the window's full id set (source.WalkOptions)
	pages  chan source.Page
	done   chan struct{} // closed once st and err are set and then has run
	cancel context.CancelFunc
	then   func() // run by the walk goroutine after a successful walk
	st     source.WalkStats
	err    error
}

// Walk buffers: how many decoded pages a walk may hold ready (each ~0.5 MB
// of Arrow buffers for 1,000 events) before it waits for the encoder. The
// encoder takes pages in bursts (it encodes 4,096 rows at a time on every
// core) while the walk's pace is set by the server; 12 pages of slack let
// both run on: a 1.16M-event hourly sync took 3.47 s instead of 3.69 s with
// 2 (medians of 5 interleaved runs) for 2 MiB more peak RSS; 24 gained
// nothing more. With several orgs (or backfill windows) in parallel the
// cores are busy anyway and the slack is shared out, down to 2 pages.
const (
	maxWalkBuffer = 12
	minWalkBuffer = 2
)

// walkBuffer is the slack of one walk when Concurrency orgs sync at once.
func (e *Engine) walkBuffer() int {
	return max(minWalkBuffer, maxWalkBuffer/e.o.Concurrency)
}

// startWalk starts walking w, holding at most buffer decoded pages. then,
// if not nil, runs once the walk has succeeded, before done is closed.
func (e *Engine) startWalk(ctx context.Context, spec OrgSpec, w source.Window, buffer int, then func()) *walk {
	_, full := e.unsorted.Load(spec.Org.ID)
	wctx, cancel := context.WithCancel(ctx)
	k := &walk{full: full, pages: make(chan source.Page, buffer), done: make(chan struct{}), cancel: cancel, then: then}
	go func() {
		defer close(k.done)
		k.st, k.err = e.o.Source.WalkWith(wctx, spec.Org, w, e.o.Mem, source.WalkOptions{FullDedup: full}, func(p source.Page) error {
			select {
			case k.pages <- p:
				return nil
			case <-wctx.Done():
				if p.Rec != nil {
					p.Rec.Release()
				}
				return wctx.Err()
			}
		})
		close(k.pages)
		if k.err == nil && k.then != nil {
			k.then()
		}
	}()
	return k
}

// stop cancels k, releases the pages it already decoded and waits for it.
func (k *walk) stop() {
	k.cancel()
	for p := range k.pages {
		if p.Rec != nil {
			p.Rec.Release()
		}
	}
	<-k.done
}

// lookahead reads the next window ahead. A window ends with its commit
// (the last row group encoded, fsync, rename, checkpoint) and the next one
// begins with a round trip whose first answer can be slow (the server
// gathers the hour); done one after the other, the encoder idled for both
// at every window boundary (~40% of a 24-window sync, runtime trace of
// `vaultsink sync`). So as soon as window i's walk has fetched its last
// page, window i+1's walk starts and fetches and decodes its first pages
// (at most walkBuffer of them, plus one in hand) while window i is still
// being encoded and committed. Windows are still written and committed
// strictly in order, by one goroutine; only the walks overlap.
type lookahead struct {
	e    *Engine
	ctx  context.Context
	spec OrgSpec
	ws   []source.Window

	mu     sync.Mutex
	next   *walk // walk of ws[at], started ahead
	at     int
	closed bool
}

func (e *Engine) lookahead(ctx context.Context, spec OrgSpec, ws []source.Window) *lookahead {
	return &lookahead{e: e, ctx: ctx, spec: spec, ws: ws, at: -1}
}

// walk returns the walk of ws[i]: the one started ahead, or a new one. Its
// success starts the walk of ws[i+1].
func (la *lookahead) walk(i int) *walk {
	la.mu.Lock()
	k, at := la.next, la.at
	la.next, la.at = nil, -1
	la.mu.Unlock()
	if k != nil && at == i {
		return k
	}
	if k != nil {
		k.stop()
	}
	return la.e.startWalk(la.ctx, la.spec, la.ws[i], la.e.walkBuffer(), la.then(i))
}

func (la *lookahead) then(i int) func() {
	if i+1 >= len(la.ws) {
		return nil
	}
	return func() {
		la.mu.Lock()
		defer la.mu.Unlock()
		if la.closed || la.ctx.Err() != nil || la.next != nil {
			return
		}
		la.next, la.at = la.e.startWalk(la.ctx, la.spec, la.ws[i+1], la.e.walkBuffer(), la.then(i+1)), i+1
	}
}

// close stops a walk started ahead and not taken.
func (la *lookahead) close() {
	la.mu.Lock()
	la.closed = true
	k := la.next
	la.next = nil
	la.mu.Unlock()
	if k != nil {
		k.stop()
	}
}
