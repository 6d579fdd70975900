package main

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/vaultsink/vaultsink/internal/durfmt"
)

// progress shows how each org of a backfill advances. On a terminal it
// draws a bar per org (windows done of total, events/s, elapsed, ETA), and
// the console's writes (the log) go through the bars' container, which
// prints them above the bars; elsewhere (a pipe, CI, systemd) it logs a
// line per org every logEvery, and when the org is done.
type progress struct {
	log      *slog.Logger
	bars     *mpb.Progress // nil off a terminal
	restore  func()
	logEvery time.Duration
}

func newProgress(a *app) *progress {
	p := &progress{log: a.log, logEvery: 10 * time.Second}
	if a.con.tty() {
		p.bars = mpb.New(mpb.WithOutput(a.con.err), mpb.WithRefreshRate(200*time.Millisecond))
		p.restore = a.con.route(p.bars)
	}
	return p
}

// add shows org, which has about total windows to do; it waits for start.
func (p *progress) add(org string, total int) *orgProgress {
	o := &orgProgress{p: p, org: org, total: total}
	if p.bars != nil {
		// Total 0: the bar completes when end says so, not when the
		// estimate is reached (the runner's count may differ by a window).
		o.bar = p.bars.New(0, mpb.BarStyle(),
			mpb.PrependDecorators(
				decor.Name(org, decor.WCSyncSpaceR),
				decor.CountersNoUnit("%d/%d windows", decor.WCSyncSpace),
			),
			mpb.AppendDecorators(
				decor.Any(o.rate, decor.WCSyncSpace),
				decor.Any(o.elapsed, decor.WCSyncSpace),
				decor.Any(o.eta, decor.WCSyncSpace),
			),
		)
		o.bar.SetTotal(int64(total), false)
	}
	return o
}

// wait returns once every bar has ended, and sends the log to stderr again.
func (p *progress) wait() {
	if p.bars != nil {
		p.bars.Wait()
		p.restore()
	}
}

// orgProgress is one org's progress.
type orgProgress struct {
	p   *progress
	org string
	bar *mpb.Bar

	mu                   sync.Mutex
	began, ended, logged time.Time
	done, skipped, total int
	events               int64
	ok                   bool // ended with every window written
}

func (o *orgProgress) start() {
	o.mu.Lock()
	o.began, o.logged = time.Now(), time.Now()
	o.mu.Unlock()
}

// update is the runner's progress callback (called from several
// goroutines): done windows written or failed, skipped ones already in the
// sink, of total; events written so far.
func (o *orgProgress) update(done, skipped, total int, events int64) {
	o.mu.Lock()
	o.done, o.skipped, o.total, o.events = done, skipped, total, events
	logNow := o.bar == nil && (time.Since(o.logged) >= o.p.logEvery || done+skipped == total)
	if logNow {
		o.logged = time.Now()
	}
	elapsed, eta := o.timesLocked()
	o.mu.Unlock()
	if o.bar != nil {
		o.bar.SetTotal(int64(total), false)
		o.bar.SetCurrent(int64(done + skipped))
		return
	}
	if logNow {
		args := []any{"org", o.org, "windows_done", done + skipped, "windows_total", total, "skipped", skipped, "rows", events, "duration", elapsed}
		if eta >= 0 {
			args = append(args, "eta", eta)
		}
		o.p.log.Info("backfill progress", args...)
	}
}

// end completes the bar (ok) or leaves it where it stopped.
func (o *orgProgress) end(ok bool) {
	o.mu.Lock()
	if !o.began.IsZero() {
		o.ended = time.Now()
	}
	o.ok = ok
	o.mu.Unlock()
	switch {
	case o.bar == nil:
	case ok:
		o.bar.SetTotal(-1, true)
	default:
		o.bar.Abort(false)
	}
}

// timesLocked is the time since start and the time left at the rate of the
// windows written so far (skipped ones cost next to nothing); eta is -1
// until a window was written.
func (o *orgProgress) timesLocked() (elapsed, eta time.Duration) {
	switch {
	case o.began.IsZero():
		return 0, -1
	case o.ended.IsZero():
		elapsed = time.Since(o.began)
	default:
		elapsed = o.ended.Sub(o.began)
	}
	if o.done == 0 {
		return elapsed, -1
	}
	left := max(o.total-o.done-o.skipped, 0)
	return elapsed, time.Duration(float64(elapsed) / float64(o.done) * float64(left))
}

func (o *orgProgress) rate(decor.Statistics) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	elapsed, _ := o.timesLocked()
	if elapsed < time.Second {
		return "- events/s"
	}
	return fmt.Sprintf("%.0f events/s", float64(o.events)/elapsed.Seconds())
}

func (o *orgProgress) elapsed(decor.Statistics) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.began.IsZero() {
		return "waiting"
	}
	elapsed, _ := o.timesLocked()
	return "elapsed " + durfmt.String(elapsed.Round(time.Second))
}

func (o *orgProgress) eta(decor.Statistics) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, eta := o.timesLocked()
	switch {
	case o.ok:
		return "done"
	case !o.ended.IsZero():
		return "stopped"
	case eta < 0:
		return "ETA -"
	}
	return "ETA " + durfmt.String(eta.Round(time.Second))
}
