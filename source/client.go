package source

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/vaultsink/vaultsink/internal/clip"
)

// Org is one organization as the client sees it: its id (which fills the
// org_id column) and where its token comes from.
type Org struct {
	ID         string
	Credential Credential
	// RateLimit overrides Config.RateLimit for this org (requests/s); 0 = inherit.
	RateLimit float64
}

// Client talks to one Events API. It is safe for concurrent use by walks of
// different orgs; each org gets its own rate limiter.
type Client struct {
	cfg    Config
	events *url.URL // BaseURL + EventsPath
	http   *http.Client
	log    *slog.Logger
	m      *Metrics

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	detected string // pagination style found by auto mode
	clock    apiClock
}

// NewClient builds a client; cfg must have been defaulted and validated.
func NewClient(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/") + "/" + strings.TrimLeft(cfg.EventsPath, "/"))
	if err != nil {
		return nil, fmt.Errorf("source.base_url: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tr.ResponseHeaderTimeout = cfg.Timeout
	if cfg.Proxy != "" {
		pu, err := url.Parse(cfg.Proxy)
		if err != nil {
			return nil, fmt.Errorf("source.proxy: %w", err)
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("source.tls.ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("source.tls.ca_file: %q holds no PEM certificate", cfg.TLS.CAFile)
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.TLS.InsecureSkipVerify {
		log.Warn("TLS certificate verification is OFF (source.tls.insecure_skip_verify): anyone on the path can read the API token; use tls.ca_file instead")
		tlsCfg.InsecureSkipVerify = true
	}
	tr.TLSClientConfig = tlsCfg
	c := &Client{
		cfg:    cfg,
		events: base,
		log:    log,
		m:      NewMetrics(reg),
	}
	c.http = &http.Client{
		Transport: tr,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			// The token goes to the configured API host only: a redirect
			// elsewhere is refused rather than followed without the token,
			// because a silently unauthenticated page reads as "zero rows".
			if !c.sameHost(req.URL) {
				return fmt.Errorf("%w: redirect to %s refused", ErrOffHost, req.URL.Host)
			}
			if len(via) >= 5 {
				return errors.New("stopped after 5 redirects")
			}
			return nil
		},
	}
	return c, nil
}

// Config is the client's (defaulted) configuration.
func (c *Client) Config() Config { return c.cfg }

// Metrics returns the client's collectors.
func (c *Client) Metrics() *Metrics { return c.m }

func (c *Client) sameHost(u *url.URL) bool {
	return strings.EqualFold(u.Scheme, c.events.Scheme) && strings.EqualFold(u.Host, c.events.Host)
}

func (c *Client) limiter(org Org) *rate.Limiter {
	r := c.cfg.RateLimit
	if org.RateLimit > 0 {
		r = org.RateLimit
	}
	if r <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.limiters == nil {
		c.limiters = map[string]*rate.Limiter{}
	}
	l, ok := c.limiters[org.ID]
	if !ok {
		burst := int(r)
		if burst < 1 {
			burst = 1
		}
		l = rate.NewLimiter(rate.Limit(r), burst)
		c.limiters[org.ID] = l
	}
	return l
}

// response is one successful page answer.
type response struct {
	body []byte
	link string // rel="next" target from the Link header, "" if none
}

// retryable is a failure worth another attempt at the same page.
type retryable struct {
	reason     string // metric label: 429, 5xx, network, malformed
	retryAfter time.Duration
	err        error
}

func (r *retryable) Error() string { return r.err.Error() }
func (r *retryable) Unwrap() error { return r.err }

// fetch GETs u once. Non-retryable failures come back as *APIError or a
// classified error; retryable ones as *retryable.
// buf, when not nil, is a buffer the body may be read into (and is grown
// into): the walk reuses one per window, because the decoder copies out
// everything it keeps, so a page's body is garbage once it is decoded.
func (c *Client) fetch(ctx context.Context, org Org, token string, u *url.URL, buf *[]byte) (response, error) {
	if !c.sameHost(u) {
		return response{}, fmt.Errorf("%w: %s (configured %s)", ErrOffHost, u.Host, c.events.Host)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return response{}, fmt.Errorf("%w: build request: %v", ErrRequest, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	start := time.Now()
	resp, err := c.http.Do(req)
	if err == nil {
		c.clock.observe(resp.Header.Get("Date"), start, time.Now())
	}
	if err != nil {
		if errors.Is(err, ErrOffHost) {
			return response{}, err
		}
		if ctx.Err() != nil {
			return response{}, ctx.Err()
		}
		return response{}, &retryable{reason: "network", err: networkError(u, err)}
	}
	defer resp.Body.Close()
	code := strconv.Itoa(resp.StatusCode)
	if resp.ContentLength > c.cfg.MaxPageBytes {
		// Refused before reading a byte: a declared size over the limit costs no memory.
		return response{}, fmt.Errorf("%w: org %s: page of %d bytes is larger than source.max_page_bytes (%d bytes): lower source.page_size or raise the limit", ErrRequest, org.ID, resp.ContentLength, c.cfg.MaxPageBytes)
	}
	body, err := readBody(resp, c.cfg.MaxPageBytes, buf)
	c.m.Requests.WithLabelValues(org.ID, code).Observe(time.Since(start).Seconds())
	if err != nil {
		if ctx.Err() != nil {
			return response{}, ctx.Err()
		}
		return response{}, &retryable{reason: "network", err: fmt.Errorf("read body: %w", unwrapURLError(err))}
	}
	if int64(len(body)) > c.cfg.MaxPageBytes {
		return response{}, fmt.Errorf("%w: org %s: page larger than source.max_page_bytes (%d bytes): lower source.page_size or raise the limit", ErrRequest, org.ID, c.cfg.MaxPageBytes)
	}
	c.m.Bytes.WithLabelValues(org.ID).Add(float64(len(body)))
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return response{body: body, link: nextLink(resp.Header.Values("Link"))}, nil
	case s == http.StatusTooManyRequests:
		return response{}, &retryable{reason: "429", retryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
			err: apiError(org.ID, s, body, "", nil)}
	case s >= 500:
		return response{}, &retryable{reason: "5xx", retryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
			err: apiError(org.ID, s, body, "", nil)}
	case s == http.StatusUnauthorized:
		return response{}, apiError(org.ID, s, body,
			"the token is missing, invalid, expired or revoked: check this org's token/token_env/token_file; a user JWT expires after 12h, use an org API token", ErrAuth)
	case s == http.StatusForbidden:
		return response{}, apiError(org.ID, s, body,
			"the token lacks the events scope or the org's plan lacks the Events API (Enterprise): create an org API token with the events scope", ErrAuth)
	default:
		e := apiError(org.ID, s, body, refusedHint(s, c.events), ErrRequest)
		if title, ok := htmlPage(resp.Header.Get("Content-Type"), body); ok {
			// A proxy's or another server's page, not the API: its markup
			// says nothing, where it came from says everything.
			e.Message = title
			e.Hint = htmlHint(c.events)
		}
		return response{}, e
	}
}

// readBody reads at most limit+1 bytes, into one allocation when the server
// declared the length (io.ReadAll would grow and copy its buffer repeatedly).
// With reuse set, the body goes into *reuse when it fits; otherwise a new
// buffer, a quarter larger than the declared size, is kept there for the
// next call.
func readBody(resp *http.Response, limit int64, reuse *[]byte) ([]byte, error) {
	r := io.LimitReader(resp.Body, limit+1)
	if n := resp.ContentLength; n >= 0 && n <= limit {
		var buf []byte
		if reuse != nil && int64(cap(*reuse)) >= n+1 {
			buf = (*reuse)[:n+1]
		} else {
			// +1 so a body longer than declared shows as such; a reused
			// buffer gets a quarter more room, or pages a little larger
			// than the last would each allocate anew.
			c := n + 1
			if reuse != nil {
				c += n / 4
			}
			buf = make([]byte, n+1, c)
			if reuse != nil {
				*reuse = buf
			}
		}
		k, err := io.ReadFull(r, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			if int64(k) < n {
				return buf[:k], io.ErrUnexpectedEOF
			}
			err = nil
		}
		return buf[:k], err
	}
	return io.ReadAll(r)
}

// Sizes an error body's parts are cut to (clip.String: on a UTF-8
// boundary, with the original length). The error travels into logs, the
// run summary, metrics and the org's checkpoint, so what the server sent
// must not decide how large those get.
const (
	// maxCodeBytes bounds error.code, an identifier.
	maxCodeBytes = 128
	// maxRawBodyBytes bounds a body that is not the API's JSON error
	// envelope (an HTML page of a proxy, say): its start is enough to
	// recognise it.
	maxRawBodyBytes = 200
)

// apiError builds the error of a non-2xx answer from its body: the API's
// JSON envelope {"error":{"code","message"}} when there is one, else the
// start of the body. Message and code are cut (clip.MessageBytes,
// maxCodeBytes) so that the error stays small whatever the server sent.
func apiError(org string, status int, body []byte, hint string, class error) *APIError {
	e := &APIError{Org: org, Status: status, Hint: hint, class: class}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && (env.Error.Code != "" || env.Error.Message != "") {
		e.Code = clip.String(env.Error.Code, maxCodeBytes)
		e.Message = clip.String(env.Error.Message, clip.MessageBytes)
	} else if len(body) > 0 {
		e.Message = clip.Bytes(bytes.TrimSpace(body), maxRawBodyBytes)
	}
	return e
}

func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseFloat(v, 64); err == nil && n >= 0 {
		return time.Duration(n * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// nextLink returns the target of rel="next" in RFC 8288 Link headers.
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range splitLinks(v) {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.IndexByte(part, '>')
			if end < 0 {
				continue
			}
			target := part[1:end]
			for _, p := range strings.Split(part[end+1:], ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(k), "rel") {
					continue
				}
				for _, r := range strings.Fields(strings.Trim(strings.TrimSpace(v), `"`)) {
					if strings.EqualFold(r, "next") {
						return target
					}
				}
			}
		}
	}
	return ""
}

// splitLinks splits a Link header value on commas outside <...>.
func splitLinks(v string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '<':
			depth++
		case '>':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

// limitedFetch waits for the org's rate limiter, if it has one, and
// fetches u once.
func (c *Client) limitedFetch(ctx context.Context, org Org, token string, u *url.URL, buf *[]byte) (response, error) {
	if lim := c.limiter(org); lim != nil {
		if err := lim.Wait(ctx); err != nil {
			return response{}, err
		}
	}
	return c.fetch(ctx, org, token, u, buf)
}

// get fetches u with retries: capped exponential backoff with full jitter,
// Retry-After honoured, bounded by attempts and elapsed time. decode runs
// inside the loop so that a malformed body is retried like a cut one.
// When pre is not nil it is a background fetch of u (prefetch) that stands
// for the first attempt; its buffer is buf.
func (c *Client) get(ctx context.Context, org Org, token string, u *url.URL, page int, buf *[]byte, pre *pending, decode func(response) error) (retries int, err error) {
	rc := c.cfg.Retry
	start := time.Now()
	for attempt := 1; ; attempt++ {
		var resp response
		if attempt == 1 && pre != nil {
			<-pre.done
			resp, err = pre.resp, pre.err
			if err != nil && ctx.Err() != nil {
				return retries, ctx.Err()
			}
		} else {
			resp, err = c.limitedFetch(ctx, org, token, u, buf) // a limiter error is not retryable
		}
		if err == nil {
			err = decode(resp)
			if err == nil {
				return retries, nil
			}
			if errors.Is(err, ErrMalformed) {
				err = &retryable{reason: "malformed", err: err}
			}
		}
		var r *retryable
		if !errors.As(err, &r) {
			return retries, err
		}
		if attempt >= rc.MaxAttempts || time.Since(start) >= rc.MaxElapsed {
			return retries, fmt.Errorf("%w after %d attempts: org %s page %d: %v", ErrRetriesExhausted, attempt, org.ID, page, r.err)
		}
		wait := backoff(rc, attempt)
		if r.retryAfter > wait {
			wait = r.retryAfter
		}
		if rest := rc.MaxElapsed - time.Since(start); wait > rest {
			wait = max(rest, 0)
		}
		retries++
		c.m.Retries.WithLabelValues(org.ID, r.reason).Inc()
		c.log.Debug("retrying page", "org", org.ID, "page", page, "attempt", attempt, "reason", r.reason, "wait", wait, "err", r.err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return retries, ctx.Err()
		case <-t.C:
		}
	}
}

// backoff is capped exponential backoff with full jitter.
func backoff(rc Retry, attempt int) time.Duration {
	d := rc.InitialBackoff << min(attempt-1, 20)
	if d <= 0 || d > rc.MaxBackoff {
		d = rc.MaxBackoff
	}
	return time.Duration(rand.Int64N(int64(d)/2+1)) + d/2
}
