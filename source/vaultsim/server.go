package vaultsim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
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
	// Faults counts injected faults by kind ("429", "cut", "dup", ...).
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
	exp := cfg.Now().Add(cfg.JWTTTL)
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

func (s *Server) countFault(kind string) {
	s.mu.Lock()
	s.stats.Faults[kind]++
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
		return buildHour(g, h, s.cfg.Rate, s.cfg.Faults.Late, s.cfg.Profile)
	})
}

// eachFinal calls fn for every event of org in [from,to) ∩ history, ignoring
// visibility (late events included): the final truth.
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
			if k.ms >= lo && k.ms < hi {
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
		e.late = isLate(g, h, k.i, s.cfg.Faults.Late)
		out = append(out, e.event())
	})
	return out
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
