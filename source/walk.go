package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/internal/pipeclock"
)

// WalkStats sums up one window's walk.
type WalkStats struct {
	Pages       int
	Items       int // elements seen in event arrays
	Rows        int // rows yielded
	Quarantined int
	Duplicates  int
	Outside     int // skipped in date mode: they belong to other windows
	Retries     int
}

// WalkOptions tune one walk.
type WalkOptions struct {
	// FullDedup keeps every event_id of the window to drop duplicates
	// (DecodeOptions.FullDedup): memory grows with the window, but the
	// events may come in any order.
	FullDedup bool
}

// Walk fetches every page of window w for org, in order, and calls fn with
// each decoded page. fn owns page.Rec and must release it. A page is handed
// to fn only once it decoded completely, so a retried page never yields
// rows twice. Walk returns the first error of fn or of the API: errors.Is
// ErrAuth / ErrRequest / ErrOffHost are permanent, others transient.
// A nil mem means memory.DefaultAllocator.
//
// Walk expects the API's (timestamp, id) order and keeps only the ids of
// the latest timestamp for dedup. If the window's events go back in time it
// stops with an error wrapping ErrUnsorted (not retried: the pages already
// handed to fn are incomplete for the window); walk it again with
// WalkWith and FullDedup.
func (c *Client) Walk(ctx context.Context, org Org, w Window, mem memory.Allocator, fn func(Page) error) (WalkStats, error) {
	return c.WalkWith(ctx, org, w, mem, WalkOptions{}, fn)
}

// WalkWith is Walk with options.
func (c *Client) WalkWith(ctx context.Context, org Org, w Window, mem memory.Allocator, opts WalkOptions, fn func(Page) error) (WalkStats, error) {
	var st WalkStats
	token, err := org.Credential.Resolve()
	if err != nil {
		return st, fmt.Errorf("%w: org %s: %v", ErrAuth, org.ID, err)
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	dropOutside := c.cfg.TimeFormat == "date"
	dec := NewDecoder(mem, DecodeOptions{Org: org.ID, Fields: c.cfg.Fields, ItemsField: c.cfg.Params.ItemsField, DropOutside: dropOutside, FullDedup: opts.FullDedup})

	style := c.cfg.Pagination
	if style == "auto" {
		c.mu.Lock()
		if c.detected != "" {
			style = c.detected
		}
		c.mu.Unlock()
	}
	// Page bodies alternate between two buffers: one is decoded while the
	// next page is read ahead into the other (prefetch.go). The decoder
	// copies everything it keeps, so a body is garbage once decoded.
	var (
		bodies [2][]byte
		pre    *pending // read-ahead of the next page, if any
	)
	defer func() { pre.discard() }()
restart:
	pre.discard()
	pre = nil
	dec.Reset(w)
	st = WalkStats{}
	seen := map[string]bool{}
	u := c.firstURL(w, style)
	for page := 1; ; page++ {
		if page > c.cfg.MaxPagesPerWindow {
			return st, fmt.Errorf("%w: org %s window %s: more than source.max_pages_per_window (%d) pages", ErrRequest, org.ID, w.Range(), c.cfg.MaxPagesPerWindow)
		}
		var (
			p    Page
			link string
		)
		ingested := time.Now()
		cur, curPre := &bodies[page%2], pre
		pre = nil
		retries, err := c.get(ctx, org, token.Reveal(), u, page, cur, curPre, func(r response) error {
			pre.discard() // a retry of this page: the last guess may be wrong
			pre = nil
			if page < c.cfg.MaxPagesPerWindow {
				if g := c.guessNext(style, u, r); g != nil {
					pre = c.prefetch(ctx, org, token.Reveal(), g, &bodies[(page+1)%2])
				}
			}
			var derr error
			end := pipeclock.Begin(pipeclock.Decode)
			p, derr = dec.DecodePage(r.body, page, ingested)
			end()
			link = r.link
			return derr
		})
		if curPre != nil {
			curPre.cancel() // done; releases its context
		}
		st.Retries += retries
		if err != nil {
			return st, fmt.Errorf("fetch page %d of %s: %w", page, w.Range(), err)
		}
		st.Pages++
		st.Items += p.Items
		st.Rows += p.Rows
		st.Quarantined += len(p.Quarantined)
		st.Duplicates += p.Duplicates
		st.Outside += p.Outside
		c.m.Pages.WithLabelValues(org.ID).Inc()
		c.m.Events.WithLabelValues(org.ID).Add(float64(p.Rows))
		c.m.Quarantined.WithLabelValues(org.ID).Add(float64(len(p.Quarantined)))
		c.m.Duplicates.WithLabelValues(org.ID).Add(float64(p.Duplicates))

		if style == "auto" {
			detected := detectStyle(c.cfg.Params, p, link)
			c.mu.Lock()
			c.detected = detected
			c.mu.Unlock()
			c.log.Debug("pagination detected", "org", org.ID, "style", detected)
			if detected == "page" {
				// The first request carried cursor-style parameters; start
				// over with page numbers so page sizes line up.
				if p.Rec != nil {
					p.Rec.Release()
				}
				style = detected
				goto restart
			}
			style = detected
		}
		next, err := c.nextURL(style, u, p, link, page)
		if err != nil {
			if p.Rec != nil {
				p.Rec.Release()
			}
			return st, fmt.Errorf("org %s window %s page %d: %w", org.ID, w.Range(), page, err)
		}
		if pre != nil && (next == nil || pre.url != next.String()) {
			pre.discard() // guessed wrong: the answer is never read
			pre = nil
			c.m.Prefetch.WithLabelValues(org.ID, "discarded").Inc()
		} else if pre != nil {
			c.m.Prefetch.WithLabelValues(org.ID, "used").Inc()
		}
		if err := fn(p); err != nil {
			return st, err
		}
		if next == nil {
			return st, nil
		}
		key := next.String()
		if seen[key] {
			return st, fmt.Errorf("%w: org %s window %s: page %d points back at an earlier page (pagination loop)", ErrRequest, org.ID, w.Range(), page)
		}
		seen[key] = true
		u = next
	}
}

// detectStyle decides the pagination style from the first answer.
func detectStyle(pp Params, p Page, link string) string {
	switch {
	case link != "":
		return "link"
	case p.Envelope != nil && hasKey(p.Envelope, pp.NextCursorField):
		return "cursor"
	case p.Envelope != nil && (hasKey(p.Envelope, pp.TotalPagesField) || hasKey(p.Envelope, pp.Page)):
		return "page"
	}
	// A bare array or an envelope without paging fields: one page only.
	return "link"
}

func hasKey(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

func (c *Client) timeParam(t time.Time, isTo bool) string {
	t = t.UTC()
	if c.cfg.TimeFormat != "date" {
		return t.Format(time.RFC3339)
	}
	day := t.Truncate(24 * time.Hour)
	if !isTo {
		return day.Format(time.DateOnly)
	}
	// `to` covers the day holding the window's last instant.
	if day.Equal(t) {
		day = day.Add(-24 * time.Hour) // window ends at midnight: last day is the previous one
	}
	if !c.cfg.DateToInclusive {
		day = day.Add(24 * time.Hour)
	}
	return day.Format(time.DateOnly)
}

func (c *Client) firstURL(w Window, style string) *url.URL {
	u := *c.events
	q := u.Query()
	q.Set(c.cfg.Params.From, c.timeParam(w.Start, false))
	q.Set(c.cfg.Params.To, c.timeParam(w.End, true))
	size := strconv.Itoa(c.cfg.PageSize)
	if style == "page" {
		q.Set(c.cfg.Params.Page, "1")
		q.Set(c.cfg.Params.PerPage, size)
	} else {
		q.Set(c.cfg.Params.Limit, size)
	}
	u.RawQuery = q.Encode()
	return &u
}

// nextURL returns the URL of the page after cur, or nil at the end.
func (c *Client) nextURL(style string, cur *url.URL, p Page, link string, page int) (*url.URL, error) {
	switch style {
	case "link":
		if link == "" {
			return nil, nil
		}
		nu, err := cur.Parse(link)
		if err != nil {
			return nil, fmt.Errorf("%w: bad Link header target %q: %v", ErrRequest, link, err)
		}
		if !c.sameHost(nu) {
			return nil, fmt.Errorf("%w: %s (configured %s); no request was made", ErrOffHost, nu.Host, c.events.Host)
		}
		return nu, nil
	case "cursor":
		raw, ok := p.Envelope[c.cfg.Params.NextCursorField]
		if !ok || string(raw) == "null" {
			return nil, nil
		}
		var cursor string
		if err := json.Unmarshal(raw, &cursor); err != nil {
			// Some APIs use numeric cursors.
			cursor = string(raw)
		}
		if cursor == "" {
			return nil, nil
		}
		nu := *cur
		q := nu.Query()
		q.Set(c.cfg.Params.Cursor, cursor)
		nu.RawQuery = q.Encode()
		return &nu, nil
	case "page":
		if p.Items == 0 || p.Items < c.cfg.PageSize && !hasKey(p.Envelope, c.cfg.Params.TotalPagesField) {
			return nil, nil
		}
		if raw, ok := p.Envelope[c.cfg.Params.TotalPagesField]; ok {
			total, err := strconv.Atoi(string(raw))
			if err != nil {
				return nil, fmt.Errorf("%w: %s is %s, not a number", ErrRequest, c.cfg.Params.TotalPagesField, raw)
			}
			if page >= total {
				return nil, nil
			}
		}
		nu := *cur
		q := nu.Query()
		q.Set(c.cfg.Params.Page, strconv.Itoa(page+1))
		nu.RawQuery = q.Encode()
		return &nu, nil
	}
	return nil, errors.New("unknown pagination style " + style)
}

// Check makes one small request for org (the last hour, one event) to prove
// the token works; it returns the classified error of the answer, if any.
func (c *Client) Check(ctx context.Context, org Org) error {
	token, err := org.Credential.Resolve()
	if err != nil {
		return fmt.Errorf("%w: org %s: %v", ErrAuth, org.ID, err)
	}
	end := time.Now().UTC().Truncate(time.Hour)
	style := c.cfg.Pagination
	if style == "auto" {
		style = "cursor"
	}
	u := c.firstURL(Window{Org: org.ID, Start: end.Add(-time.Hour), End: end}, style)
	q := u.Query()
	if style == "page" {
		q.Set(c.cfg.Params.PerPage, "1")
	} else {
		q.Set(c.cfg.Params.Limit, "1")
	}
	u.RawQuery = q.Encode()
	_, err = c.fetch(ctx, org, token.Reveal(), u, nil)
	var r *retryable
	if errors.As(err, &r) {
		return r.err
	}
	return err
}
