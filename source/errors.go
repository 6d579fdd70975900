package source

import (
	"errors"
	"fmt"
	"strconv"

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
