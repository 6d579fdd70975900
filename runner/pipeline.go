package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vaultsink/vaultsink/event"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// walk is one window's walk (fetch and decode) running in its own
// goroutine and handing decoded pages through a small channel. Whoever
// holds a walk must either drain pages and then wait on done, or stop it.
type walk struct {
	o      *opened
	pages  chan source.Page
	done   chan struct{} // closed once st and err are set and then has run
	cancel context.CancelFunc
	then   func(*walk) // run by the walk goroutine after a successful walk
	st     source.WalkStats
	err    error
}

// Walk buffers: how many decoded pages a walk may hold ready (each ~0.5 MB
// of Arrow buffers for 1,000 events) before it waits for the encoder. The
// encoder takes pages in bursts while the walk's pace is set by the server,
// so some slack lets both run on instead of waiting for each other. With
// several orgs (or backfill windows) in parallel the cores are busy anyway
// and more slack only costs memory, so it is shared out, down to 2 pages.
// The sizes are measured choices: see bench/DECISIONS.md.
const (
	maxWalkBuffer = 12
	minWalkBuffer = 2
)

// walkBuffer is the slack of one walk when Concurrency orgs sync at once.
func (e *Engine) walkBuffer() int {
	return max(minWalkBuffer, maxWalkBuffer/e.o.Concurrency)
}

// startWalk starts walking o's window, skipping what o's unit holds and
// the ids in near (event.Known), holding at most buffer decoded pages.
// then, if not nil, runs once the walk has succeeded, before done is closed.
func (e *Engine) startWalk(ctx context.Context, spec OrgSpec, o *opened, near []event.IDLookup, buffer int, then func(*walk)) *walk {
	known := event.Known{Held: o.held, Near: near}
	wctx, cancel := context.WithCancel(ctx)
	k := &walk{o: o, pages: make(chan source.Page, buffer), done: make(chan struct{}), cancel: cancel, then: then}
	go func() {
		defer close(k.done)
		k.st, k.err = e.o.Source.Walk(wctx, spec.Org, o.w, e.o.Mem, source.WalkOptions{Known: known}, func(p source.Page) error {
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
			k.then(k)
		}
	}()
	return k
}

// stop cancels k, releases the pages it already decoded and waits for it.
// The unit stays open: the caller aborts it.
func (k *walk) stop() {
	k.cancel()
	for p := range k.pages {
		if p.Rec != nil {
			p.Rec.Release()
		}
	}
	<-k.done
}

// prepared is a window ready to be filled: its unit open, its walk running.
type prepared struct {
	o   *opened
	k   *walk
	err error
}

// pipeline walks an org's contiguous windows in order and reads one ahead.
// A window ends with its commit (the last row group encoded, the upload or
// rename, the checkpoint) and the next begins with a round trip whose
// first answer can be slow; done one after the other, the encoder would
// idle at every window boundary. So as soon as window i's walk has fetched
// its last page, window i+1 is prepared — its unit opened, what the sink
// holds around it gathered, its walk started — while window i is still
// being encoded and committed. Windows are still written and committed
// strictly in order, by one goroutine; only the walks overlap.
//
// Window i's walk skips the ids of window i-1 (what its walk left: its
// carry) and of window i+1 (what the sink holds there: its unit is opened
// one ahead), so an id repeated across a boundary is archived once.
type pipeline struct {
	e      *Engine
	ctx    context.Context
	spec   OrgSpec
	ws     []event.Window
	before *carry  // what precedes ws[0]; nil: read from the sink
	h      *holder // the org's lease; nil: units carry no fence

	mu      sync.Mutex
	preps   map[int]chan prepared // preparations started and not taken
	units   map[int]*opened       // opened for their held ids, not walked yet
	carries map[int]*carry
	closed  bool
}

func (e *Engine) pipeline(ctx context.Context, spec OrgSpec, ws []event.Window, before *carry, h *holder) *pipeline {
	return &pipeline{e: e, ctx: ctx, spec: spec, ws: ws, before: before, h: h,
		preps: map[int]chan prepared{}, units: map[int]*opened{}, carries: map[int]*carry{}}
}

// take returns window i prepared: the preparation started ahead, or one
// made now. Windows are taken in order.
func (p *pipeline) take(i int) prepared {
	p.mu.Lock()
	ch, ok := p.preps[i]
	if !ok {
		ch = make(chan prepared, 1)
		p.preps[i] = ch
		p.mu.Unlock()
		ch <- p.prepare(i)
	} else {
		p.mu.Unlock()
	}
	r := <-ch
	p.mu.Lock()
	delete(p.preps, i)
	p.mu.Unlock()
	return r
}

// prepare opens window i's unit, gathers the ids around it and starts its
// walk. It runs after window i-1's walk ended.
func (p *pipeline) prepare(i int) prepared {
	if p.isClosed() {
		return prepared{err: errStopped}
	}
	o, err := p.unit(i, true)
	if err != nil {
		return prepared{err: err}
	}
	near, err := p.near(i)
	if err != nil {
		o.abort(p.ctx)
		return prepared{err: err}
	}
	k := p.e.startWalk(p.ctx, p.spec, o, near, p.e.walkBuffer(), func(k *walk) { p.walked(i, k) })
	return prepared{o: o, k: k}
}

// walked runs in window i's walk goroutine once it succeeded: it records
// what the window leaves to the next and prepares the next.
func (p *pipeline) walked(i int, k *walk) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.carries[i] = carryOf(k.o, k.st)
	delete(p.carries, i-1)
	if p.closed || i+1 >= len(p.ws) || p.ctx.Err() != nil {
		return
	}
	if _, ok := p.preps[i+1]; ok {
		return
	}
	ch := make(chan prepared, 1)
	p.preps[i+1] = ch
	go func() { ch <- p.prepare(i + 1) }()
}

// unit returns window i's unit, opening it if needed. With take it leaves
// the pipeline's keeping (it is walked now); without, it stays there until
// its turn.
func (p *pipeline) unit(i int, take bool) (*opened, error) {
	p.mu.Lock()
	o := p.units[i]
	if take {
		delete(p.units, i)
	}
	p.mu.Unlock()
	if o != nil {
		return o, nil
	}
	o, err := p.e.open(p.ctx, p.spec, p.ws[i], p.h)
	if err != nil {
		return nil, err
	}
	if !take {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			o.abort(p.ctx)
			return nil, errStopped
		}
		p.units[i] = o
		p.mu.Unlock()
	}
	return o, nil
}

// near gathers the ids a walk of window i skips: the previous window's and
// the next one's.
func (p *pipeline) near(i int) ([]event.IDLookup, error) {
	var out []event.IDLookup
	w := p.ws[i]
	size := w.End.Sub(w.Start)
	p.mu.Lock()
	prev := p.carries[i-1]
	p.mu.Unlock()
	if i == 0 {
		prev = p.before
	}
	if prev != nil && prev.w.End.Equal(w.Start) {
		out = append(out, prev.sets...)
	} else {
		ids, err := p.e.idsOf(p.ctx, p.spec, event.Window{Org: w.Org, Start: w.Start.Add(-size), End: w.Start})
		if err != nil {
			return nil, err
		}
		out = append(out, ids...)
	}
	if i+1 < len(p.ws) && p.ws[i+1].Start.Equal(w.End) {
		next, err := p.unit(i+1, false)
		if err != nil {
			return nil, err
		}
		if next.held.Len() > 0 {
			out = append(out, next.held)
		}
		return out, nil
	}
	ids, err := p.e.idsOf(p.ctx, p.spec, event.Window{Org: w.Org, Start: w.End, End: w.End.Add(size)})
	if err != nil {
		return nil, err
	}
	return append(out, ids...), nil
}

// last is what the pipeline's last walked window leaves to a window after it.
func (p *pipeline) last() *carry {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.carries[len(p.ws)-1]
}

func (p *pipeline) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close stops walks started ahead and not taken, and aborts their units
// and the units opened ahead.
func (p *pipeline) close() {
	p.mu.Lock()
	p.closed = true
	preps := p.preps
	units := p.units
	p.preps, p.units = map[int]chan prepared{}, map[int]*opened{}
	p.mu.Unlock()
	for _, ch := range preps {
		r := <-ch
		if r.k != nil {
			r.k.stop()
		}
		if r.o != nil {
			r.o.abort(p.ctx)
		}
	}
	for _, o := range units {
		o.abort(p.ctx)
	}
}

// windows writes ws (contiguous, in order) and calls after for each
// committed window, in order. check runs on every filled window before its
// commit; its error stops the run there (the windows before it are
// committed). With a sink that commits in batches (sinks.BatchCommitter) up
// to MaxBatch windows are filled first and committed together. Every
// commit proves h's lease first and carries its fence. It returns what the
// last window leaves to the one after it.
func (e *Engine) windows(stop, work context.Context, spec OrgSpec, ws []event.Window, before *carry, log *slog.Logger,
	h *holder, check func(filled) error, after func(i int, w event.Window, r sinks.Result) error) (*carry, error) {
	p := e.pipeline(work, spec, ws, before, h)
	defer p.close()
	n := 1
	bc, ok := spec.Sink.(sinks.BatchCommitter)
	if ok && bc.MaxBatch() > 1 {
		n = bc.MaxBatch()
	} else {
		bc = nil
	}
	for done := 0; done < len(ws); {
		batch := make([]filled, 0, min(n, len(ws)-done))
		var stopErr error
		for i := done; i < len(ws) && len(batch) < n; i++ {
			if stop.Err() != nil {
				stopErr = errStopped
				break
			}
			r := p.take(i)
			if r.err != nil {
				stopErr = r.err
				break
			}
			f, err := e.fill(work, spec, r.o, r.k)
			if err != nil {
				stopErr = err
				break
			}
			if err := check(f); err != nil {
				f.abort(work)
				stopErr = err
				break
			}
			batch = append(batch, f)
		}
		if len(batch) > 0 {
			if err := e.commit(work, spec, bc, batch, log, h, func(j int, r sinks.Result) error {
				return after(done+j, batch[j].w, r)
			}); err != nil {
				return nil, err
			}
			done += len(batch)
		}
		if stopErr != nil {
			return nil, stopErr
		}
	}
	return p.last(), nil
}

// commit commits filled windows, one by one or as one batch, and calls
// after for each in order. With h, each commit is preceded by the proof
// that the lease is still the run's, and a commit the sink refuses as
// fenced loses the lease.
func (e *Engine) commit(ctx context.Context, spec OrgSpec, bc sinks.BatchCommitter, batch []filled, log *slog.Logger, h *holder, after func(int, sinks.Result) error) error {
	org := spec.Org.ID
	prove := func() error {
		if h == nil {
			return nil
		}
		if err := h.check(ctx); err != nil {
			return &stageError{"lease", err}
		}
		return nil
	}
	failed := func(err error) error {
		if h != nil && errors.Is(err, sinks.ErrFenced) {
			return &stageError{"lease", h.fenced(ctx, err)}
		}
		return &stageError{"sink", err}
	}
	if bc == nil {
		for j, f := range batch {
			crashAt("before-commit")
			if err := prove(); err != nil {
				for _, g := range batch[j:] {
					g.abort(ctx)
				}
				return err
			}
			res, err := f.unit.Commit(ctx)
			if err != nil {
				for _, g := range batch[j:] {
					g.abort(ctx)
				}
				e.m.Windows.WithLabelValues(org, "failed").Inc()
				return failed(fmt.Errorf("commit %s: %w", f.w, err))
			}
			crashAt("after-commit")
			e.committed(org, f, res, log)
			if err := after(j, res); err != nil {
				for _, g := range batch[j+1:] {
					g.abort(ctx)
				}
				return err
			}
		}
		return nil
	}
	units := make([]sinks.Unit, len(batch))
	for i, f := range batch {
		units[i] = f.unit
	}
	crashAt("before-commit")
	if err := prove(); err != nil {
		for _, f := range batch {
			f.abort(ctx)
		}
		return err
	}
	results, err := bc.CommitBatch(ctx, units)
	if err != nil {
		for _, f := range batch {
			f.abort(ctx)
		}
		e.m.Windows.WithLabelValues(org, "failed").Add(float64(len(batch)))
		return failed(fmt.Errorf("commit %d windows %s .. %s: %w", len(batch), batch[0].w.Range(), batch[len(batch)-1].w.Range(), err))
	}
	if len(results) != len(batch) {
		return &stageError{"sink", fmt.Errorf("commit batch: %d results for %d windows", len(results), len(batch))}
	}
	crashAt("after-commit")
	for j, f := range batch {
		e.committed(org, f, results[j], log)
		if err := after(j, results[j]); err != nil {
			return err
		}
	}
	return nil
}

var errStopped = errors.New("stopped before the org was current")
