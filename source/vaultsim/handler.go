package vaultsim

import (
	"bytes"
	"math"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"sync"
	"time"
)

// EventsPath is where the events endpoint lives; clients configure the base
// URL ".../api" and append "/events/v1".
const EventsPath = "/api/events/v1"

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	mux.HandleFunc(EventsPath, s.serveEvents)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// net/http would write Date from the real clock; a client that reads
		// the API's time must see the API's clock (ClockOffset, Now).
		w.Header().Set("Date", s.now().Format(http.TimeFormat))
		mux.ServeHTTP(w, r)
	})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	b := make([]byte, 0, 128)
	b = append(b, `{"error":{"code":`...)
	b = appendJSONString(b, []byte(code))
	b = append(b, `,"message":`...)
	b = appendJSONString(b, []byte(msg))
	b = append(b, "}}"...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512<<10); return &b }}

// view is what one request may see, in unix ms.
type view struct {
	lo, hi int64 // [lo,hi) ∩ history (∩ before now when live) (∩ after retention)
	now    int64
	lateMs int64
	late   bool
	// check: some row may be hidden by the tests below (late, share,
	// retention of a copy's original); false on the default path.
	check bool
	// filter: rows are hidden by more than time (share, retention of
	// copies), so an hour's count needs the hour.
	filter bool
	share  float64 // visible share of the org, 1 = all
	ret    int64   // retention cut-off, unix ms (math.MinInt64 = none)
	seed   uint64
}

func (v *view) visible(h *hourData, i int) bool {
	return !v.check || v.visibleSlow(h, i)
}

func (v *view) visibleSlow(h *hourData, i int) bool {
	if v.late && h.late[i] && v.now < h.ms[i]+v.lateMs {
		return false
	}
	if h.orig != nil && h.orig[i] < v.ret {
		return false // a copy whose original was cut by retention
	}
	return v.share >= 1 || shown(v.seed, h.id(i), v.share)
}

type ref struct {
	h *hourData
	i int
}

// request is a parsed events query.
type request struct {
	lo, hi  int64 // ns
	limit   int
	cur     *cursor
	page    int
	perPage int
}

type badRequest struct{ code, msg string }

func parseBound(v string, datesOnly bool) (ns int64, isDate bool, err *badRequest) {
	if len(v) == 10 {
		if t, e := time.Parse("2006-01-02", v); e == nil {
			return t.UnixNano(), true, nil
		}
	}
	if datesOnly {
		return 0, false, &badRequest{"invalid_parameter", "expected a date YYYY-MM-DD, got " + strconv.Quote(v)}
	}
	t, e := time.Parse(time.RFC3339Nano, v)
	if e != nil {
		return 0, false, &badRequest{"invalid_parameter", "expected an RFC 3339 timestamp or a date YYYY-MM-DD, got " + strconv.Quote(v)}
	}
	return t.UnixNano(), false, nil
}

func (s *Server) parseRequest(org string, qv url.Values, now time.Time) (request, *badRequest) {
	var rq request
	dates := s.cfg.Profile == ProfileDates
	from := qv.Get("from")
	if from == "" {
		return rq, &badRequest{"invalid_parameter", "from is required"}
	}
	lo, _, err := parseBound(from, dates)
	if err != nil {
		return rq, &badRequest{err.code, "from: " + err.msg}
	}
	rq.lo = lo
	toGiven := qv.Get("to") != ""
	if toGiven {
		hi, _, err := parseBound(qv.Get("to"), dates)
		if err != nil {
			return rq, &badRequest{err.code, "to: " + err.msg}
		}
		if dates {
			hi += int64(24 * time.Hour)
		}
		rq.hi = hi
	} else {
		rq.hi = now.UnixNano()
	}

	sizeParam := "limit"
	if s.cfg.Profile == ProfilePage {
		sizeParam = "per_page"
	}
	rq.limit = 100
	if v := qv.Get(sizeParam); v != "" {
		n, e := strconv.Atoi(v)
		if e != nil || n < 1 {
			return rq, &badRequest{"invalid_parameter", sizeParam + " must be a positive integer, got " + strconv.Quote(v)}
		}
		if n > 1000 {
			return rq, &badRequest{"invalid_parameter", sizeParam + " must be at most 1000, got " + v}
		}
		rq.limit = n
	}

	if s.cfg.Profile == ProfilePage {
		rq.page = 1
		if v := qv.Get("page"); v != "" {
			n, e := strconv.Atoi(v)
			if e != nil || n < 1 {
				return rq, &badRequest{"invalid_parameter", "page must be a positive integer, got " + strconv.Quote(v)}
			}
			rq.page = n
		}
		rq.perPage = rq.limit
		if s.cfg.PageCap > 0 && rq.perPage > s.cfg.PageCap {
			rq.perPage = s.cfg.PageCap // silently, as some APIs do
		}
	} else if v := qv.Get("cursor"); v != "" {
		c, e := s.decodeCursor(v)
		if e != nil {
			return rq, &badRequest{"invalid_cursor", "the cursor is malformed or was not issued by this server"}
		}
		if !toGiven {
			rq.hi = c.hi
		}
		// Without org context (fail closed) there is no org to check the
		// cursor against: the page is empty and final whatever it names.
		if c.org != org && org != "" || c.lo != rq.lo || c.hi != rq.hi {
			return rq, &badRequest{"invalid_cursor", "the cursor belongs to another query: replay it with the same from and to"}
		}
		rq.cur = &c
	}
	if rq.lo > rq.hi {
		return rq, &badRequest{"invalid_parameter", "from must not be after to"}
	}
	return rq, nil
}

func (s *Server) isOffHost(host string) bool {
	if s.cfg.OffHost != "" {
		return host == s.cfg.OffHost
	}
	h, _, err := net.SplitHostPort(host)
	return err == nil && h == "127.0.0.2"
}

func (s *Server) offHostFor(reqHost string) string {
	if s.cfg.OffHost != "" {
		return s.cfg.OffHost
	}
	_, port, err := net.SplitHostPort(reqHost)
	if err != nil {
		return "127.0.0.2"
	}
	return net.JoinHostPort("127.0.0.2", port)
}

func sleepCtx(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	offHost := s.isOffHost(r.Host)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.record("", http.StatusMethodNotAllowed, 0, "", offHost)
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use GET")
		return
	}
	now := s.now()
	p, aerr := s.authenticate(r.Header.Get("Authorization"), now)
	if aerr != nil {
		s.record("", aerr.status, 0, "", offHost)
		writeError(w, aerr.status, aerr.code, aerr.msg)
		return
	}
	org := p.org
	if c := s.ctl.Load(); c != nil && c.failClosed[p.key] {
		org = ""
	}
	rawQ := r.URL.RawQuery
	f := &s.cfg.Faults
	seed := s.cfg.Seed
	att := s.attempt(org, rawQ)
	fail := func(kind string, status int, code, msg string) {
		s.record(org, status, 0, kind, offHost)
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", strconv.Itoa(s.cfg.RetryAfter))
		}
		if status == http.StatusBadGateway {
			// A gateway in front of the API answers in HTML, not in the API's JSON.
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			_, _ = w.Write([]byte("<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"))
			return
		}
		writeError(w, status, code, msg)
	}
	switch {
	case f.fires(seed, "429", org, rawQ, att):
		fail("429", http.StatusTooManyRequests, "rate_limited", "too many requests; retry after the Retry-After delay")
		return
	case f.fires(seed, "500", org, rawQ, att):
		fail("500", http.StatusInternalServerError, "internal_error", "internal server error")
		return
	case f.fires(seed, "502", org, rawQ, att):
		fail("502", http.StatusBadGateway, "", "")
		return
	case f.fires(seed, "503", org, rawQ, att):
		fail("503", http.StatusServiceUnavailable, "unavailable", "service temporarily unavailable")
		return
	}
	rq, berr := s.parseRequest(org, r.URL.Query(), now)
	if berr != nil {
		s.record(org, http.StatusBadRequest, 0, "", offHost)
		writeError(w, http.StatusBadRequest, berr.code, berr.msg)
		return
	}
	fault := ""
	delay := s.cfg.Latency
	if f.fires(seed, "slow", org, rawQ, att) {
		delay += s.cfg.SlowDelay
		fault = "slow"
	}
	if !sleepCtx(r, delay) {
		return
	}

	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	body, n, next, dup, copies := s.renderPage((*bp)[:0], org, rq, now, r)
	*bp = body[:0]
	if dup {
		s.countFault("dup")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if next != "" {
		if f.fires(seed, "offhost", org, rawQ, att) {
			u, _ := url.Parse(next)
			u.Host = s.offHostFor(r.Host)
			next = u.String()
			fault = "offhost"
		}
		h.Set("Link", "<"+next+`>; rel="next"`)
	}
	switch {
	case f.fires(seed, "cut", org, rawQ, att):
		s.record(org, http.StatusOK, 0, "cut", offHost)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body[:len(body)/2])
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		// Aborting the handler makes net/http close the connection without
		// finishing the body; it does not log ErrAbortHandler.
		panic(http.ErrAbortHandler)
	case f.fires(seed, "malformed", org, rawQ, att):
		body = body[:len(body)/2]
		fault = "malformed"
		n = 0
	}
	s.record(org, http.StatusOK, n, fault, offHost)
	if copies > 0 && n > 0 {
		s.countFaultN("redeliver", copies)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	s.cfg.Logger.Debug("events page", "org", org, "rows", n, "fault", fault, "duration", time.Since(start))
}

// renderPage appends the response body of rq to b. It returns the number of
// events, the next-page URL (link profile), whether a dup was injected and
// how many redelivered copies the page holds.
func (s *Server) renderPage(b []byte, org string, rq request, now time.Time, r *http.Request) ([]byte, int, string, bool, int) {
	v := s.viewFor(rq, now, org)
	if org == "" {
		// Row-level security fails closed: no org context, no rows.
		v.hi = v.lo
	}
	g := s.gens.get(org)
	if s.cfg.Profile == ProfilePage {
		offset := (rq.page - 1) * rq.perPage
		refs, total := s.collectOffset(g, v, offset, rq.perPage)
		b = append(b, `{"events":[`...)
		b = appendRefs(b, refs)
		b = strconv.AppendInt(append(b, `],"page":`...), int64(rq.page), 10)
		if !s.cfg.NoTotals {
			pages := (total + rq.perPage - 1) / rq.perPage
			b = strconv.AppendInt(append(b, `,"total_pages":`...), int64(pages), 10)
		}
		if s.cfg.HasMore {
			b = strconv.AppendBool(append(b, `,"has_more":`...), total > offset+rq.perPage)
		}
		return append(b, '}'), len(refs), "", false, s.countCopies(refs)
	}

	var after string
	var afterMs int64
	dup := false
	if rq.cur != nil {
		after, afterMs = rq.cur.lastID, rq.cur.lastMs
		dup = rq.limit >= 2 && s.cfg.Faults.Dup > 0 &&
			unit(mix(s.cfg.Seed^hashString("dup\x00"+org+"\x00"+after))) < s.cfg.Faults.Dup
	}
	refs := s.collect(g, v, after, afterMs, dup, rq.limit+1, make([]ref, 0, rq.limit+1))
	var nextCur string
	if len(refs) > rq.limit {
		refs = refs[:rq.limit]
		last := refs[len(refs)-1]
		nextCur = s.encodeCursor(cursor{org: org, lo: rq.lo, hi: rq.hi, lastMs: last.h.ms[last.i], lastID: string(last.h.id(last.i))})
	}
	if s.cfg.Profile == ProfileLink {
		b = append(appendRefs(append(b, '['), refs), ']')
		next := ""
		if nextCur != "" {
			qv := r.URL.Query()
			qv.Set("cursor", nextCur)
			scheme := "http"
			if r.TLS != nil {
				scheme = "https"
			}
			next = (&url.URL{Scheme: scheme, Host: r.Host, Path: EventsPath, RawQuery: qv.Encode()}).String()
		}
		return b, len(refs), next, dup, s.countCopies(refs)
	}
	b = append(appendRefs(append(b, `{"data":[`...), refs), ']')
	switch {
	case nextCur != "":
		b = append(append(append(b, `,"next_cursor":"`...), nextCur...), '"')
	case !s.cfg.OmitFinalCursor:
		b = append(b, `,"next_cursor":null`...)
	}
	return append(b, '}'), len(refs), "", dup, s.countCopies(refs)
}

// countCopies counts the redelivered copies among refs.
func (s *Server) countCopies(refs []ref) int {
	if s.cfg.Faults.Redeliver <= 0 {
		return 0
	}
	n := 0
	for _, rf := range refs {
		if rf.h.redo[rf.i] {
			n++
		}
	}
	return n
}

func appendRefs(b []byte, refs []ref) []byte {
	for j, rf := range refs {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, rf.h.blob[rf.h.off[rf.i]:rf.h.off[rf.i+1]]...)
	}
	return b
}

func (s *Server) viewFor(rq request, now time.Time, org string) view {
	hlo, hhi := s.histBounds()
	nowMs := now.UnixMilli()
	if s.cfg.Live {
		hhi = nowMs
	}
	// Stored times are whole ms: t >= lo ⇔ ms >= ceil(lo), while
	// t > lo ⇔ ms >= floor(lo)+1 (and likewise for to).
	lo, hi := ceilMs(rq.lo), ceilMs(rq.hi)
	if s.cfg.LeftOpenBounds {
		lo, hi = floorDiv(rq.lo, 1e6)+1, floorDiv(rq.hi, 1e6)+1
	}
	v := view{
		lo:     max(lo, hlo),
		hi:     min(hi, hhi),
		now:    nowMs,
		lateMs: s.cfg.LateDelay.Milliseconds(),
		late:   s.cfg.Faults.Late > 0,
		share:  1,
		ret:    math.MinInt64,
		seed:   s.cfg.Seed,
	}
	if c := s.ctl.Load(); c != nil {
		v.share, v.ret = c.forOrg(org)
		// Rows served before the cut-off are gone with their originals;
		// only a copy served after it needs its original's time checked.
		v.lo = max(v.lo, v.ret)
		copiesCut := v.ret != math.MinInt64 && s.cfg.Faults.Redeliver > 0
		v.filter = v.share < 1 || copiesCut
	}
	v.check = v.late || v.filter
	return v
}

// collect appends up to max visible events of v after the event id `after`
// (at it too, when inclusive).
func (s *Server) collect(g *orgGen, v view, after string, afterMs int64, inclusive bool, max int, out []ref) []ref {
	start := v.lo
	if after != "" && afterMs > start {
		start = afterMs
	}
	aid := []byte(after)
	for h := floorDiv(start, hourMs); h*hourMs < v.hi; h++ {
		if s.hourEmpty(g, h) {
			continue
		}
		hd := s.hour(g, h)
		n := hd.n()
		i := sort.Search(n, func(i int) bool { return hd.ms[i] >= v.lo })
		if after != "" {
			// Rows sort by (time, id); the id alone is not enough once a
			// redelivered copy carries an earlier event's id.
			j := sort.Search(n, func(i int) bool {
				if hd.ms[i] != afterMs {
					return hd.ms[i] > afterMs
				}
				c := bytes.Compare(hd.id(i), aid)
				return c > 0 || inclusive && c == 0
			})
			i = maxInt(i, j)
		}
		for ; i < n && hd.ms[i] < v.hi; i++ {
			if !v.visible(hd, i) {
				continue
			}
			out = append(out, ref{hd, i})
			if len(out) == max {
				return out
			}
		}
	}
	return out
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// hourVisible counts the visible events of hour h, building the hour only
// when it is cut by the bounds, has late events still hidden, or rows the
// generator cannot count (copies, a share).
func (s *Server) hourVisible(g *orgGen, h int64, v view) int {
	if s.hourEmpty(g, h) {
		return 0
	}
	start, end := h*hourMs, (h+1)*hourMs
	if start >= v.lo && end <= v.hi && (!v.late || end-1+v.lateMs <= v.now) && !v.filter {
		if s.cfg.Faults.Redeliver > 0 {
			return s.hour(g, h).n()
		}
		return hourCount(g, h, s.cfg.Rate)
	}
	hd := s.hour(g, h)
	c := 0
	for i := range hd.n() {
		if hd.ms[i] >= v.lo && hd.ms[i] < v.hi && v.visible(hd, i) {
			c++
		}
	}
	return c
}

// collectOffset returns up to max visible events of v starting at offset,
// and the total number of visible events (page profile).
func (s *Server) collectOffset(g *orgGen, v view, offset, max int) ([]ref, int) {
	var out []ref
	total := 0
	if v.lo >= v.hi {
		return nil, 0
	}
	for h := floorDiv(v.lo, hourMs); h*hourMs < v.hi; h++ {
		c := s.hourVisible(g, h, v)
		if c > 0 && len(out) < max && offset < total+c {
			hd := s.hour(g, h)
			skip := offset - total
			if skip < 0 {
				skip = 0
			}
			for i := range hd.n() {
				if hd.ms[i] < v.lo || hd.ms[i] >= v.hi || !v.visible(hd, i) {
					continue
				}
				if skip > 0 {
					skip--
					continue
				}
				if len(out) == max {
					break
				}
				out = append(out, ref{hd, i})
			}
		}
		total += c
	}
	return out, total
}
