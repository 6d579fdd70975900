package vaultsim

import (
	"fmt"
	"log/slog"
	"time"
)

// Profile selects the response shape (docs/vaultterm-api.md, "Variant
// profiles").
type Profile string

// The profiles the simulator serves.
const (
	ProfileDefault Profile = "default" // cursor pagination, {"data":[...],"next_cursor":...}
	ProfilePage    Profile = "page"    // ?page=N&per_page=M, {"events":[...],"page":N,"total_pages":K}
	ProfileLink    Profile = "link"    // bare JSON array, next page in a Link header
	ProfileCamel   Profile = "camel"   // default pagination, camelCase keys, no id, object actor/resource, string detail
	ProfileDates   Profile = "dates"   // default shape, from/to are dates only, to inclusive of its whole day
)

// ParseProfile checks a --profile value.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(s); p {
	case ProfileDefault, ProfilePage, ProfileLink, ProfileCamel, ProfileDates:
		return p, nil
	case "":
		return ProfileDefault, nil
	}
	return "", fmt.Errorf("unknown profile %q (want default, page, link, camel or dates)", s)
}

// Config describes a simulated VaultTerm. The zero value plus defaults is a
// 3-org server with the last 7 days of history at 2000 events/hour/org.
type Config struct {
	Seed uint64
	Orgs int // org_1..org_N; default 3
	// From and To bound the generated history [From, To). Zero To = Now()
	// at New; zero From = To - 7 days. With Live, To is ignored: history
	// ends at the current Now().
	From, To time.Time
	Rate     float64 // mean events per hour per org; default 2000; varies by hour and weekday
	Profile  Profile
	Faults   Faults
	// LateDelay is how long after its timestamp a `late` event becomes
	// visible; default 2h.
	LateDelay time.Duration
	// SlowDelay is the added delay of a `slow` response; default 2s.
	SlowDelay time.Duration
	// Latency is added to every events response (benchmarks of a real
	// network); default 0.
	Latency time.Duration
	// RetryAfter is the Retry-After value (seconds) of injected 429s. The Go
	// zero value is 0 (fast tests); the CLI defaults to 1.
	RetryAfter int
	JWTSecret  string        // HS256 key; default "vaultsim-dev-secret"
	JWTTTL     time.Duration // lifetime of the issued JWTs from Now() at New; default 12h
	Live       bool
	// OffHost is the host:port the `offhost` fault points Link URLs at;
	// default 127.0.0.2 with the request's port. Tests may point it at a
	// listener of their own to prove a client never follows it.
	OffHost string
	// Now is the clock; default time.Now. Tests inject one.
	Now func() time.Time
	// CacheBytes bounds the rendered hours kept in memory; default 256 MiB.
	CacheBytes int
	Logger     *slog.Logger // default: discard

	// The options below imitate real APIs that are imperfect in small ways
	// a client must survive. Each is off in the zero value.

	// OmitFinalCursor (cursor profiles: default, camel, dates) leaves the
	// next_cursor key out of the last page instead of writing
	// "next_cursor":null.
	OmitFinalCursor bool
	// PageCap (page profile) silently caps per_page: a request for
	// per_page=1000 gets at most PageCap events per page, and page N starts
	// at offset (N-1)*PageCap. 0 = no cap.
	PageCap int
	// NoTotals (page profile) leaves "total_pages" out of the envelope.
	NoTotals bool
	// HasMore (page profile) adds "has_more":true|false to the envelope,
	// true when a later page has events.
	HasMore bool
	// LeftOpenBounds makes the query bounds (from, to] instead of
	// [from, to): an event exactly at from is excluded, one exactly at to
	// included. The generated history stays [From, To).
	LeftOpenBounds bool
	// SecondPrecision stores event times truncated to the second: they are
	// rendered without fractional seconds, and the bounds, the sort order
	// (time, id) and the truth (Truth, EventIDs, Events) all use the
	// truncated time. Ids keep the generated millisecond.
	SecondPrecision bool
	// ClockOffset skews the API's clock: its now is Now()+ClockOffset, for
	// the history end (default To, Live), an omitted `to`, late visibility,
	// JWT issue and expiry, and the Date header of every response.
	ClockOffset time.Duration
	// RedeliverDelay is how much later than the original a `redeliver`
	// copy is timestamped; default 20m; must be in [1ms, 1h) (at least 1s
	// with SecondPrecision).
	RedeliverDelay time.Duration
}

func (c *Config) setDefaults() {
	if c.Orgs == 0 {
		c.Orgs = 3
	}
	if c.Rate == 0 {
		c.Rate = 2000
	}
	if c.Profile == "" {
		c.Profile = ProfileDefault
	}
	if c.LateDelay == 0 {
		c.LateDelay = 2 * time.Hour
	}
	if c.SlowDelay == 0 {
		c.SlowDelay = 2 * time.Second
	}
	if c.JWTSecret == "" {
		c.JWTSecret = "vaultsim-dev-secret"
	}
	if c.JWTTTL == 0 {
		c.JWTTTL = 12 * time.Hour
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = 256 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RedeliverDelay == 0 {
		c.RedeliverDelay = 20 * time.Minute
	}
	if c.To.IsZero() {
		c.To = c.Now().Add(c.ClockOffset).UTC()
	}
	if c.From.IsZero() {
		c.From = c.To.Add(-7 * 24 * time.Hour)
	}
	c.From, c.To = c.From.UTC(), c.To.UTC()
}

func (c *Config) validate() error {
	if _, err := ParseProfile(string(c.Profile)); err != nil {
		return err
	}
	if c.Orgs < 1 {
		return fmt.Errorf("orgs %d: must be at least 1", c.Orgs)
	}
	if c.Rate < 0 {
		return fmt.Errorf("rate %v: must not be negative", c.Rate)
	}
	if !c.Live && !c.From.Before(c.To) {
		return fmt.Errorf("history [%s,%s): from must be before to", c.From.Format(time.RFC3339), c.To.Format(time.RFC3339))
	}
	if c.RetryAfter < 0 {
		return fmt.Errorf("retry-after %d: must not be negative", c.RetryAfter)
	}
	if c.PageCap < 0 {
		return fmt.Errorf("page-cap %d: must not be negative", c.PageCap)
	}
	// A copy must land strictly after its original (or the two would share
	// a (time, id) position) and within the next hour, which is as far back
	// as an hour's build looks for originals.
	minDelay := time.Millisecond
	if c.SecondPrecision {
		minDelay = time.Second
	}
	if c.RedeliverDelay < minDelay || c.RedeliverDelay >= time.Hour {
		return fmt.Errorf("redeliver-delay %v: must be in [%v, 1h)", c.RedeliverDelay, minDelay)
	}
	return c.Faults.validate()
}
