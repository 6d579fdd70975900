package source

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/vaultsink/vaultsink/event"
)

// The API's clock. A window is closed once its end is settle behind the
// API's now, not this host's: when the API's clock runs behind ours, a
// window our clock calls closed may still be filling at the API, and pulled
// then it would be committed short. Every answer's Date header (one-second
// resolution) is a sample of the API's clock; the offset is the latest
// sample taken over a round trip short enough to say something.

// maxClockRTT is the longest round trip whose Date header is used.
const maxClockRTT = 5 * time.Second

type apiClock struct {
	mu     sync.Mutex
	known  bool
	offset time.Duration // API's clock minus ours
	rtt    time.Duration
	at     time.Time // when the sample was taken (our clock)
}

// observe records the Date header of an answer to a request sent at sent
// and answered at recv.
func (k *apiClock) observe(date string, sent, recv time.Time) {
	if date == "" {
		return
	}
	t, err := http.ParseTime(date)
	if err != nil {
		return
	}
	rtt := recv.Sub(sent)
	if rtt < 0 || rtt > maxClockRTT {
		return
	}
	// The server stamped the answer somewhere in [t, t+1s) while we
	// waited; the middle of both intervals is the best guess.
	off := t.Add(500 * time.Millisecond).Sub(sent.Add(rtt / 2)).Round(time.Millisecond)
	k.mu.Lock()
	defer k.mu.Unlock()
	// A sample within a second of the last one says nothing new: keep the
	// estimate steady (Date's resolution) unless the new round trip was
	// shorter, hence more precise.
	if k.known && (off-k.offset).Abs() <= time.Second && rtt > k.rtt && recv.Sub(k.at) < time.Hour {
		return
	}
	k.known, k.offset, k.rtt, k.at = true, off, rtt, recv
}

func (k *apiClock) get() (time.Duration, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.offset, k.known
}

// ClockOffset is the API's clock minus this host's as the Date headers of
// its answers tell, and whether any answer carried one.
func (c *Client) ClockOffset() (time.Duration, bool) { return c.clock.get() }

// Now is the API's current time: this host's clock plus ClockOffset. Before
// any answer has carried a Date header it asks the API for one (ProbeClock);
// if the API sends none, it is this host's clock and known is false.
func (c *Client) Now(ctx context.Context, org Org) (now time.Time, known bool) {
	if off, ok := c.clock.get(); ok {
		return time.Now().Add(off), true
	}
	c.ProbeClock(ctx, org)
	if off, ok := c.clock.get(); ok {
		return time.Now().Add(off), true
	}
	return time.Now(), false
}

// ProbeClock sends one HEAD request for the events of the last second to
// read the API's Date header: any answer carries one, even an error, and a
// HEAD answer has no body to read.
func (c *Client) ProbeClock(ctx context.Context, org Org) {
	token, err := org.Credential.Resolve()
	if err != nil {
		return
	}
	end := time.Now().UTC().Truncate(time.Second)
	u := c.firstURL(event.Window{Org: org.ID, Start: end.Add(-time.Second), End: end}, c.styleHint())
	ctx, cancel := context.WithTimeout(ctx, min(c.cfg.Timeout, 30*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, u.String(), nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+token.Reveal())
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	if lim := c.limiter(org); lim != nil {
		if lim.Wait(ctx) != nil {
			return
		}
	}
	sent := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
	c.clock.observe(resp.Header.Get("Date"), sent, time.Now())
}
