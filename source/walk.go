package source

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/vaultsink/vaultsink/internal/clip"
	"github.com/vaultsink/vaultsink/internal/pipeclock"
)

// WalkStats sums up one window's walk.
type WalkStats struct {
	Pages          int
	Items          int // elements seen in event arrays
	Rows           int // rows yielded
	Quarantined    int
	Duplicates     int // repeats of an id within the window
	Held           int // records whose id the sink already holds for the window
	NearDuplicates int // records whose id an adjacent window holds
	Outside        int // skipped: they belong to other windows (date mode, boundary_overlap)
	Retries        int
	// Foreign counts records quarantined because they name another org;
	// ForeignOrg is the first such org (a token of another org).
	Foreign    int
	ForeignOrg string
	// Style is the pagination style the walk followed ("" when one page
	// without any paging field decided nothing).
	Style string
	// IDs are the event ids the window emitted (not the held ones): with
	// Known.Held, what the sink will hold for the window afterwards. The
	// caller owns it once the walk returned.
	IDs *event.IDSet
}

// WalkOptions tune one walk.
type WalkOptions struct {
	// Known is what the sink already holds around the window: records with
	// those ids are skipped (see Known), so an id is archived once.
	Known event.Known
}

// Walk fetches every page of window w for org, in order, and calls fn with
// each decoded page. fn owns page.Rec and must release it. A page is handed
// to fn only once it decoded completely, so a retried page never yields
// rows twice. Walk returns the first error of fn or of the API: errors.Is
// ErrAuth / ErrRequest / ErrOffHost are permanent, others transient.
// A nil mem means memory.DefaultAllocator.
//
// Every event_id of the window is remembered (about 30 B each), so an id is
// yielded once whatever the order of the events.
func (c *Client) Walk(ctx context.Context, org Org, w event.Window, mem memory.Allocator, opts WalkOptions, fn func(Page) error) (WalkStats, error) {
	var st WalkStats
	token, err := org.Credential.Resolve()
	if err != nil {
		return st, fmt.Errorf("%w: org %s: %v", ErrAuth, org.ID, err)
	}
	if mem == nil {
		mem = memory.DefaultAllocator
	}
	dropOutside := c.cfg.TimeFormat == "date"
	dec := NewDecoder(mem, DecodeOptions{Org: org.ID, Fields: c.cfg.Fields, ItemsField: c.cfg.Params.ItemsField,
		DropOutside: dropOutside, Margin: c.margin(), Known: opts.Known})

	// With auto pagination the style is decided per walk, from evidence:
	// a Link header, the cursor field (even null) or a page-number field.
	// A page with none of them decides nothing: it is the window's last
	// page under any style. What earlier walks proved (c.detected) only
	// chooses the first request's parameters.
	auto := c.cfg.Pagination == "auto"
	style := c.cfg.Pagination
	if auto {
		style = c.styleHint()
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
	dec.Reset(w, opts.Known)
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
		st.Held += p.Held
		st.NearDuplicates += p.NearDuplicates
		st.Outside += p.Outside
		for _, q := range p.Quarantined {
			if q.Reason == ReasonOrgMismatch {
				st.Foreign++
			}
		}
		if st.ForeignOrg == "" {
			st.ForeignOrg = p.ForeignOrg
		}
		c.m.Pages.WithLabelValues(org.ID).Inc()
		c.m.Events.WithLabelValues(org.ID).Add(float64(p.Rows))
		c.m.Quarantined.WithLabelValues(org.ID).Add(float64(len(p.Quarantined)))
		c.m.Duplicates.WithLabelValues(org.ID).Add(float64(p.Duplicates + p.NearDuplicates))

		if auto {
			if detected := detectStyle(c.cfg.Params, p, link); detected != "" && detected != style {
				c.setStyleHint(detected)
				c.log.Debug("pagination detected", "org", org.ID, "style", detected)
				if detected == "page" && page == 1 {
					// The first request carried cursor-style parameters;
					// start over with page numbers so page sizes line up.
					if p.Rec != nil {
						p.Rec.Release()
					}
					style = detected
					goto restart
				}
				style = detected
			}
		}
		if style != "" && st.Style == "" {
			st.Style = style
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
			st.IDs = dec.IDs()
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

// detectStyle names the pagination style a page proves, or "" when the page
// carries no paging field (a bare array or an envelope without one): such a
// page is the last of its walk under any style and proves nothing.
func detectStyle(pp Params, p Page, link string) string {
	switch {
	case link != "":
		return "link"
	case p.Envelope != nil && hasKey(p.Envelope, pp.NextCursorField):
		return "cursor"
	case p.Envelope != nil && (hasKey(p.Envelope, pp.TotalPagesField) || hasKey(p.Envelope, pp.HasMoreField) || hasKey(p.Envelope, pp.Page)):
		return "page"
	}
	return ""
}

// styleHint is the style earlier walks proved ("" before any proof).
func (c *Client) styleHint() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.detected
}

func (c *Client) setStyleHint(s string) {
	c.mu.Lock()
	c.detected = s
	c.mu.Unlock()
}

// DetectedStyle is the pagination style auto mode has seen the API use, or
// the configured one; "" before any evidence.
func (c *Client) DetectedStyle() string {
	if c.cfg.Pagination != "auto" {
		return c.cfg.Pagination
	}
	return c.styleHint()
}

// margin is how far each request reaches past the window's ends.
func (c *Client) margin() time.Duration {
	if c.cfg.TimeFormat == "date" {
		return 0 // whole days; DropOutside handles the rest
	}
	return c.cfg.BoundaryOverlap
}

func hasKey(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

func (c *Client) timeParam(t time.Time, isTo bool) string {
	t = t.UTC()
	if c.cfg.TimeFormat != "date" {
		// The request reaches boundary_overlap past each end, so an event on
		// a boundary reaches its window whether the API's bounds are
		// [from,to) or (from,to] and whatever its timestamps' precision;
		// the decoder keeps only [start,end) and drops the rest as the
		// adjacent windows'.
		if isTo {
			t = t.Add(c.margin())
		} else {
			t = t.Add(-c.margin())
		}
		return t.Format(time.RFC3339Nano)
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

func (c *Client) firstURL(w event.Window, style string) *url.URL {
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
			return nil, fmt.Errorf("%w: bad Link header target %q: %v", ErrRequest, clip.String(link, clip.MessageBytes), err)
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
	case "":
		// Nothing proved a style (auto): a page without any paging field is
		// the last page under every style.
		return nil, nil
	case "page":
		// A short page is not the last: an API may cap the page size below
		// page_size without saying so. Only an empty page, has_more false or
		// total_pages ends the walk.
		if p.Items == 0 {
			return nil, nil
		}
		if raw, ok := p.Envelope[c.cfg.Params.HasMoreField]; ok {
			switch string(raw) {
			case "false":
				return nil, nil
			case "true":
			default:
				return nil, fmt.Errorf("%w: %s is %s, not true or false", ErrRequest, c.cfg.Params.HasMoreField, clip.Bytes(raw, clip.MessageBytes))
			}
		}
		if raw, ok := p.Envelope[c.cfg.Params.TotalPagesField]; ok {
			total, err := strconv.Atoi(string(raw))
			if err != nil {
				return nil, fmt.Errorf("%w: %s is %s, not a number", ErrRequest, c.cfg.Params.TotalPagesField, clip.Bytes(raw, clip.MessageBytes))
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
// the token works; it returns the classified error of the answer, if any,
// and the pagination style the answer shows ("" when it shows none: a
// one-event answer without a paging field).
func (c *Client) Check(ctx context.Context, org Org) (style string, err error) {
	token, err := org.Credential.Resolve()
	if err != nil {
		return "", fmt.Errorf("%w: org %s: %v", ErrAuth, org.ID, err)
	}
	end := time.Now().UTC().Truncate(time.Hour)
	style = c.cfg.Pagination
	if style == "auto" {
		style = c.styleHint()
	}
	u := c.firstURL(event.Window{Org: org.ID, Start: end.Add(-time.Hour), End: end}, style)
	q := u.Query()
	if style == "page" {
		q.Set(c.cfg.Params.PerPage, "1")
	} else {
		q.Set(c.cfg.Params.Limit, "1")
	}
	u.RawQuery = q.Encode()
	r, err := c.fetch(ctx, org, token.Reveal(), u, nil)
	var rt *retryable
	if errors.As(err, &rt) {
		return "", rt.err
	}
	if err != nil {
		return "", err
	}
	if c.cfg.Pagination != "auto" {
		return c.cfg.Pagination, nil
	}
	dec := NewDecoder(memory.DefaultAllocator, DecodeOptions{Org: org.ID, Fields: c.cfg.Fields, ItemsField: c.cfg.Params.ItemsField, DropOutside: true})
	dec.Reset(event.Window{Org: org.ID, Start: end.Add(-time.Hour), End: end}, event.Known{})
	p, err := dec.DecodePage(r.body, 1, time.Now())
	if err != nil {
		return "", fmt.Errorf("%w: org %s: the answer is not an events page: %v", ErrRequest, org.ID, err)
	}
	if p.Rec != nil {
		p.Rec.Release()
	}
	if s := detectStyle(c.cfg.Params, p, r.link); s != "" {
		c.setStyleHint(s)
		return s, nil
	}
	return c.styleHint(), nil
}

// errEnough stops a Probe's walk at the first page with rows.
var errEnough = errors.New("enough")

// Probe reports whether the API serves any event of org in w: it walks w
// only until a page has a row of the org.
func (c *Client) Probe(ctx context.Context, org Org, w event.Window) (bool, error) {
	found := false
	_, err := c.Walk(ctx, org, w, nil, WalkOptions{}, func(p Page) error {
		if p.Rec != nil {
			p.Rec.Release()
		}
		if p.Rows > 0 {
			found = true
			return errEnough
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		err = nil
	}
	return found, err
}
