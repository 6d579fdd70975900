package source

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/vaultsink/vaultsink/internal/clip"
)

// Error classes. Test with errors.Is; the concrete *APIError carries detail.
var (
	// ErrAuth: 401/403. Never retried; the org is marked failed until the
	// token is fixed.
	ErrAuth = errors.New("authentication failed")
	// ErrRequest: the server refused the request (400, 404, ...) or the
	// response cannot be paged (loop, too many pages, page too large).
	// Retrying the same request cannot help.
	ErrRequest = errors.New("request refused")
	// ErrOffHost: a next link points at another host. No request is made:
	// the token is only ever sent to the configured API host.
	ErrOffHost = errors.New("next link points at another host")
	// ErrRetriesExhausted wraps the last retryable failure of a page.
	ErrRetriesExhausted = errors.New("retries exhausted")
)

// APIError is a non-2xx answer from the Events API. Code and Message come
// from the server and are cut when the error is built (Message to
// clip.MessageBytes, with the original length appended), so the error is
// small whatever the server sent.
type APIError struct {
	Org     string
	Status  int
	Code    string // the server's error.code, if any
	Message string // the server's error.message (or the start of a non-JSON body), if any
	Hint    string // what the user should check
	class   error
}

// Error names the org, the status, the server's code and message (quoted)
// and the hint. The quoted message is bounded too: quoting escapes control
// characters and invalid UTF-8, which can make it several times longer.
func (e *APIError) Error() string {
	s := fmt.Sprintf("org %s: HTTP %d", e.Org, e.Status)
	if e.Code != "" {
		s += " " + clip.String(e.Code, maxCodeBytes)
	}
	if e.Message != "" {
		q := strconv.Quote(clip.String(e.Message, clip.MessageBytes))
		s += ": " + clip.String(q, 2*clip.MessageBytes)
	}
	if e.Hint != "" {
		s += " (" + e.Hint + ")"
	}
	return s
}

// Unwrap returns the error class (ErrAuth, ErrRequest) or nil for retryable ones.
func (e *APIError) Unwrap() error { return e.class }

// Retryable reports whether err is worth retrying by the caller at the
// window level (everything that is not an auth, request or off-host error).
func Retryable(err error) bool {
	return err != nil && !errors.Is(err, ErrAuth) && !errors.Is(err, ErrRequest) && !errors.Is(err, ErrOffHost)
}

// endpoint renders u for a message: scheme, host and path, without the
// query (a cursor is noise in logs) or a password in the userinfo.
func endpoint(u *url.URL) string {
	c := *u
	c.RawQuery, c.ForceQuery, c.Fragment, c.RawFragment = "", false, "", ""
	return c.Redacted()
}

// unwrapURLError drops *url.Error's rendering, which quotes the whole URL
// with its query; the cause remains.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// networkError is a request that got no answer. It names the URL, and the
// setting to check when no connection could be made at all: that is a
// wrong source.base_url far more often than an outage.
func networkError(u *url.URL, err error) error {
	cause := unwrapURLError(err)
	hint := ""
	var op *net.OpError
	var dns *net.DNSError
	var cert *tls.CertificateVerificationError
	switch {
	case errors.As(cause, &cert):
		hint = " (the API's TLS certificate is not trusted here: check the host in source.base_url, or add its CA with source.tls.ca_file)"
	case errors.As(cause, &dns), errors.As(cause, &op) && (op.Op == "dial" || op.Op == "proxyconnect"):
		hint = " (no connection to the API: check source.base_url and that this host can reach it, through source.proxy if it needs one)"
	}
	return fmt.Errorf("GET %s: %w%s", endpoint(u), cause, hint)
}

// refusedHint is the hint of a 4xx answer other than 401, 403 and 429: a
// 404 is most often a base_url without the API's path prefix.
func refusedHint(status int, events *url.URL) string {
	if status == http.StatusNotFound {
		return "GET " + endpoint(events) + " does not exist: check source.base_url (the API root with its path prefix, e.g. https://vault.example.com/api) and source.events_path, then source.params and source.time_format"
	}
	return "the server refused the request: check source.params and source.time_format"
}

// htmlHint replaces refusedHint when the answer is an HTML page: the
// Events API answers errors in JSON, so the page came from another server.
func htmlHint(events *url.URL) string {
	return "an HTML page, not the Events API's JSON error: " + endpoint(events) +
		" is most likely not the API; check source.base_url first (the server, and the path prefix such as /api), then source.events_path"
}

// maxTitleBytes bounds the title htmlPage returns.
const maxTitleBytes = 120

// htmlPage reports whether an error body is an HTML page (by its media
// type or its first tag) and returns the page's title, if it has one.
func htmlPage(contentType string, body []byte) (title string, ok bool) {
	mt, _, _ := mime.ParseMediaType(contentType)
	head := asciiLower(bytes.TrimSpace(body[:min(len(body), 4096)]))
	if mt != "text/html" && mt != "application/xhtml+xml" &&
		!bytes.HasPrefix(head, []byte("<!doctype html")) && !bytes.HasPrefix(head, []byte("<html")) {
		return "", false
	}
	start := bytes.Index(head, []byte("<title"))
	if start < 0 {
		return "", true
	}
	open := bytes.IndexByte(head[start:], '>')
	if open < 0 {
		return "", true
	}
	text := head[start+open+1:]
	if end := bytes.Index(text, []byte("</title")); end >= 0 {
		text = text[:end]
	}
	// The lowered copy has the original's offsets: take the title's own case.
	orig := bytes.TrimSpace(body[:min(len(body), 4096)])[start+open+1:][:len(text)]
	return clip.String(strings.Join(strings.Fields(string(orig)), " "), maxTitleBytes), true
}

// asciiLower lowers ASCII letters only, so offsets into the result are
// offsets into b.
func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}
