package vaultsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Server is a simulated VaultTerm Events API. It is safe for concurrent use.
type Server struct {
	cfg       Config
	orgs      []string
	gens      orgGens
	creds     []Creds
	tokens    map[string]principal // API and SCIM tokens
	cursorKey []byte
	cache     *hourCache
	handler   http.Handler
	// ctl holds the runtime controls (SetVisibleShare, SetRetention,
	// SetFailClosed); nil while none is set, so requests skip them at the
	// cost of one atomic load.
	ctl atomic.Pointer[controls]

	mu       sync.Mutex
	uses     map[string]int // authorized requests per credential
	revokedM map[string]bool
	attempts map[string]int // per org + exact query
	stats    RequestStats
}

// RequestStats counts what the server answered. Maps are copies.
type RequestStats struct {
	Total    int64
	ByStatus map[int]int64
	// ByOrg counts per org and status; requests that failed authentication
	// count under org "".
	ByOrg map[string]map[int]int64
	// Faults counts injected faults by kind ("429", "cut", "dup", ...);
	// "redeliver" counts the copies written in complete 200 bodies.
	Faults map[string]int64
	// OffHost counts requests that arrived with the OffHost address as their
	// Host header: a client followed an off-host link to this server.
	OffHost int64
	// Events counts events written in 200 responses (duplicates included).
	Events int64
}

// New builds a server from cfg (defaults applied to a copy).
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("vaultsim config: %w", err)
	}
	s := &Server{
		cfg:      cfg,
		gens:     orgGens{seed: cfg.Seed},
		tokens:   map[string]principal{},
		cache:    newHourCache(cfg.CacheBytes),
		uses:     map[string]int{},
		revokedM: map[string]bool{},
		attempts: map[string]int{},
	}
	ck := sha256.Sum256([]byte("cursor\x00" + strconv.FormatUint(cfg.Seed, 10) + "\x00" + cfg.JWTSecret))
	s.cursorKey = ck[:]
	exp := s.now().Add(cfg.JWTTTL)
	for i := 1; i <= cfg.Orgs; i++ {
		org := "org_" + strconv.Itoa(i)
		s.orgs = append(s.orgs, org)
		c := Creds{
			OrgID:     org,
			Token:     tokenFor(cfg.Seed, org, "events"),
			SCIMToken: tokenFor(cfg.Seed, org, "scim"),
		}
		c.JWT = s.MintJWT(org, "events", exp)
		s.tokens[c.Token] = principal{org: org, scope: "events", key: c.Token}
		s.tokens[c.SCIMToken] = principal{org: org, scope: "scim", key: c.SCIMToken}
		s.creds = append(s.creds, c)
		s.gens.get(org)
	}
	s.resetStats()
	s.handler = s.routes()
	return s, nil
}

// now is the API's clock: Config.Now shifted by ClockOffset.
func (s *Server) now() time.Time { return s.cfg.Now().Add(s.cfg.ClockOffset).UTC() }

// Config returns the effective configuration (defaults applied).
func (s *Server) Config() Config { return s.cfg }

// Orgs returns the configured org ids, org_1..org_N.
func (s *Server) Orgs() []string { return append([]string(nil), s.orgs...) }

// Creds returns the credentials of every org, in org order.
func (s *Server) Creds() []Creds { return append([]Creds(nil), s.creds...) }

// Handler serves /api/events/v1 and /health.
func (s *Server) Handler() http.Handler { return s.handler }

// Revoke revokes a credential at once, as an org admin would.
func (s *Server) Revoke(token string) {
	s.mu.Lock()
	s.revokedM[token] = true
	s.mu.Unlock()
}

func (s *Server) revoked(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revokedM[key]
}

// use counts an authorized request and reports whether the credential is
// still valid under revoke-after.
func (s *Server) use(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uses[key]++
	if n := s.cfg.Faults.RevokeAfter; n > 0 && s.uses[key] > n {
		s.revokedM[key] = true
		s.stats.Faults["revoke"]++
		return false
	}
	return true
}

// attempt returns how many times (org, query) was asked before: the retry
// number that fault draws depend on.
func (s *Server) attempt(org, query string) int {
	k := org + "\x00" + query
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.attempts) > 1<<20 {
		// Bounded memory on endless runs; forgetting only makes faults
		// possible again on very old queries.
		clear(s.attempts)
	}
	n := s.attempts[k]
	s.attempts[k] = n + 1
	return n
}

func (s *Server) resetStats() {
	s.stats = RequestStats{ByStatus: map[int]int64{}, ByOrg: map[string]map[int]int64{}, Faults: map[string]int64{}}
}

func (s *Server) record(org string, status int, events int, fault string, offHost bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats.Total++
	s.stats.ByStatus[status]++
	m := s.stats.ByOrg[org]
	if m == nil {
		m = map[int]int64{}
		s.stats.ByOrg[org] = m
	}
	m[status]++
	if fault != "" {
		s.stats.Faults[fault]++
	}
	if offHost {
		s.stats.OffHost++
	}
	s.stats.Events += int64(events)
}

func (s *Server) countFault(kind string) { s.countFaultN(kind, 1) }

func (s *Server) countFaultN(kind string, n int) {
	s.mu.Lock()
	s.stats.Faults[kind] += int64(n)
	s.mu.Unlock()
}

// Requests returns a snapshot of the request counters.
func (s *Server) Requests() RequestStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := RequestStats{Total: s.stats.Total, OffHost: s.stats.OffHost, Events: s.stats.Events,
		ByStatus: map[int]int64{}, ByOrg: map[string]map[int]int64{}, Faults: map[string]int64{}}
	for k, v := range s.stats.ByStatus {
		out.ByStatus[k] = v
	}
	for o, m := range s.stats.ByOrg {
		c := map[int]int64{}
		for k, v := range m {
			c[k] = v
		}
		out.ByOrg[o] = c
	}
	for k, v := range s.stats.Faults {
		out.Faults[k] = v
	}
	return out
}

// ResetRequests zeroes the counters (not the fault attempts or revocations).
func (s *Server) ResetRequests() {
	s.mu.Lock()
	s.resetStats()
	s.mu.Unlock()
}

// Listen serves on addr (e.g. "127.0.0.1:0") until closeFn is called.
// baseURL is what clients configure: "http://127.0.0.1:PORT/api".
func (s *Server) Listen(addr string) (baseURL string, closeFn func() error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	hs := s.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/api", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(ctx); err != nil {
			return hs.Close()
		}
		return nil
	}, nil
}

// HTTPServer returns an http.Server for Handler with sane timeouts.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
}

// TB is the part of testing.TB that Start needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Running is a started server, for tests.
type Running struct {
	*Server
	URL string // base URL, "http://127.0.0.1:PORT/api"
}

// Start builds and serves a simulator on 127.0.0.1 for the duration of a
// test, like httptest.NewServer.
func Start(t TB, cfg Config) *Running {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("vaultsim: %v", err)
	}
	u, closeFn, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("vaultsim: %v", err)
	}
	t.Cleanup(func() { _ = closeFn() })
	return &Running{Server: s, URL: u}
}

// histBounds returns the generated history in unix ms; with Live the end is
// far future (truth) and the request path caps it at now.
func (s *Server) histBounds() (lo, hi int64) {
	lo = ceilMs(s.cfg.From.UnixNano())
	if s.cfg.Live {
		return lo, 1 << 62
	}
	return lo, ceilMs(s.cfg.To.UnixNano())
}

func ceilMs(ns int64) int64 {
	ms := ns / 1e6
	if ns%1e6 > 0 {
		ms++
	}
	return ms
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func (s *Server) hour(g *orgGen, h int64) *hourData {
	return s.cache.get(hourID{g.id, h}, func() *hourData {
		return s.buildHour(g, h)
	})
}

// eachFinal calls fn for every event of org in [from,to) ∩ history, ignoring
// visibility (late events included): the final truth. Membership is by
// stored time (SecondPrecision truncates); redelivered copies are not in it.
func (s *Server) eachFinal(org string, from, to time.Time, fn func(g *orgGen, h int64, k key)) {
	g := s.gens.get(org)
	hlo, hhi := s.histBounds()
	lo := max(ceilMs(from.UnixNano()), hlo)
	hi := min(ceilMs(to.UnixNano()), hhi)
	if lo >= hi {
		return
	}
	for h := floorDiv(lo, hourMs); h*hourMs < hi; h++ {
		for _, k := range hourKeys(g, h, s.cfg.Rate) {
			if ms := s.stored(k.ms); ms >= lo && ms < hi {
				fn(g, h, k)
			}
		}
	}
}

// Truth returns the count and digest of the events the API eventually
// serves for org in [from,to) (late events included): digest is the
// sha256 hex of the sorted ids joined by "\n".
func (s *Server) Truth(org string, from, to time.Time) (count int, digest string) {
	d := sha256.New()
	var id [26]byte
	line := make([]byte, 0, 32)
	s.eachFinal(org, from, to, func(_ *orgGen, _ int64, k key) {
		encodeID(&id, k)
		line = line[:0]
		if count > 0 {
			line = append(line, '\n')
		}
		line = append(append(line, idPrefix...), id[:]...)
		d.Write(line)
		count++
	})
	return count, hex.EncodeToString(d.Sum(nil))
}

// DigestIDs is the digest Truth uses, for clients to compare against: the
// sha256 hex of ids (sorted here) joined by "\n".
func DigestIDs(ids []string) string {
	ids = append([]string(nil), ids...)
	sort.Strings(ids)
	d := sha256.New()
	for i, id := range ids {
		if i > 0 {
			d.Write([]byte{'\n'})
		}
		d.Write([]byte(id))
	}
	return hex.EncodeToString(d.Sum(nil))
}

// EventIDs returns the sorted ids of the final truth of org in [from,to).
func (s *Server) EventIDs(org string, from, to time.Time) []string {
	var ids []string
	var id [26]byte
	s.eachFinal(org, from, to, func(_ *orgGen, _ int64, k key) {
		encodeID(&id, k)
		ids = append(ids, idPrefix+string(id[:]))
	})
	return ids
}

// Events returns the canonical events of the final truth of org in
// [from,to), in serving order. Render one as a profile would with AppendJSON.
func (s *Server) Events(org string, from, to time.Time) []Event {
	var out []Event
	var e ev
	s.eachFinal(org, from, to, func(g *orgGen, h int64, k key) {
		e.fill(g, h, k)
		e.ms = s.stored(k.ms)
		e.late = isLate(g, h, k.i, s.cfg.Faults.Late)
		out = append(out, e.event())
	})
	return out
}

// AppendEvent appends e exactly as this server writes it: in its profile,
// and without fractional seconds under SecondPrecision.
func (s *Server) AppendEvent(dst []byte, e Event) []byte {
	g := e.ev()
	g.sec = s.cfg.SecondPrecision
	return g.appendJSON(dst, s.cfg.Profile)
}

// VisibleEventIDs returns the sorted ids of the events of org in [from,to)
// that the API serves now under the runtime controls (SetVisibleShare,
// SetRetention), ignoring late visibility, the clock and the Live history
// end: the final truth (EventIDs) less what the controls hide. Redelivered
// copies are not listed (their ids are, once, as in EventIDs).
func (s *Server) VisibleEventIDs(org string, from, to time.Time) []string {
	share, ret := s.ctl.Load().forOrg(org)
	var ids []string
	var id [26]byte
	s.eachFinal(org, from, to, func(_ *orgGen, _ int64, k key) {
		if s.stored(k.ms) < ret {
			return
		}
		encodeID(&id, k)
		if share < 1 && !shown(s.cfg.Seed, id[:], share) {
			return
		}
		ids = append(ids, idPrefix+string(id[:]))
	})
	return ids
}

// controls are the runtime controls, copied on write: a request reads one
// snapshot without locking.
type controls struct {
	share      map[string]float64 // org -> visible share, when below 1
	retention  map[string]int64   // org -> first served ms (stored time)
	failClosed map[string]bool    // credential -> no org context
}

// forOrg returns org's visible share (1 = all) and retention cut-off in
// unix ms (math.MinInt64 = none). A nil *controls has none.
func (c *controls) forOrg(org string) (share float64, ret int64) {
	share, ret = 1, math.MinInt64
	if c == nil {
		return share, ret
	}
	if v, ok := c.share[org]; ok {
		share = v
	}
	if v, ok := c.retention[org]; ok {
		ret = v
	}
	return share, ret
}

// setControl applies fn to a copy of the controls and publishes it (nil
// once every control is back to its default).
func (s *Server) setControl(fn func(c *controls)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &controls{share: map[string]float64{}, retention: map[string]int64{}, failClosed: map[string]bool{}}
	if old := s.ctl.Load(); old != nil {
		maps.Copy(c.share, old.share)
		maps.Copy(c.retention, old.retention)
		maps.Copy(c.failClosed, old.failClosed)
	}
	fn(c)
	if len(c.share) == 0 && len(c.retention) == 0 && len(c.failClosed) == 0 {
		c = nil
	}
	s.ctl.Store(c)
}

// SetVisibleShare makes org's credentials see only a share of its events
// (clamped to [0,1]; 1, the default, is all of them) in every profile, count
// and total. Which events is a pure function of the seed and the event id,
// so the same events stay hidden until the share is raised again, and a
// lower share hides a superset. Truth, EventIDs and Events ignore it;
// VisibleEventIDs follows it. Safe to call while requests are served.
func (s *Server) SetVisibleShare(org string, share float64) {
	if !(share >= 0) { // negative or NaN
		share = 0
	}
	s.setControl(func(c *controls) {
		if share >= 1 {
			delete(c.share, org)
		} else {
			c.share[org] = share
		}
	})
}

// SetRetention stops serving org's events whose (original) time is before
// from, as a retention cut-off would; the zero time removes the cut-off. A
// redelivered copy goes with its original. Truth, EventIDs and Events
// ignore it; VisibleEventIDs follows it. Safe to call while requests are
// served.
func (s *Server) SetRetention(org string, from time.Time) {
	s.setControl(func(c *controls) {
		if from.IsZero() {
			delete(c.retention, org)
		} else {
			c.retention[org] = ceilMs(from.UnixNano())
		}
	})
}

// SetFailClosed makes requests with this credential (an API token or a JWT,
// exactly as sent) authenticate but lose their org context, as when
// row-level security fails closed: every page is empty and final (a cursor
// of an earlier page is accepted and ends the walk). Safe to call while
// requests are served.
func (s *Server) SetFailClosed(token string, on bool) {
	s.setControl(func(c *controls) {
		if on {
			c.failClosed[token] = true
		} else {
			delete(c.failClosed, token)
		}
	})
}

// TruthOf computes Truth without a server, for the `vaultsim truth` command:
// history bounds, profile and faults other than late do not change it.
func TruthOf(seed uint64, rate float64, org string, from, to time.Time) (count int, digest string, err error) {
	s, err := New(Config{Seed: seed, Rate: rate, Orgs: 1, From: from, To: to, Now: func() time.Time { return to }})
	if err != nil {
		return 0, "", err
	}
	count, digest = s.Truth(org, from, to)
	return count, digest, nil
}
