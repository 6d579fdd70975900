package source

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
)

// Read-ahead. A walk is a chain: the next page's URL is known only once the
// current page is read, so fetching and decoding would alternate, with the
// walk idle while the server renders a page. Instead, as soon as a page's
// body is in, the walk guesses the next URL cheaply (the Link header, or
// the cursor found at the end of the body) and fetches it in the
// background while it decodes the current page. The guess is only used
// when the decoded page yields exactly the same URL; otherwise the
// prefetched answer is discarded unread. A wrong guess costs one request,
// never a row.

// pending is one background fetch.
type pending struct {
	url    string
	done   chan struct{}
	cancel context.CancelFunc
	resp   response
	err    error
}

// prefetch starts fetching u into *buf, which the caller must not touch
// until the fetch is done (wait or discard).
func (c *Client) prefetch(ctx context.Context, org Org, token string, u *url.URL, buf *[]byte) *pending {
	pctx, cancel := context.WithCancel(ctx)
	p := &pending{url: u.String(), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		p.resp, p.err = c.limitedFetch(pctx, org, token, u, buf)
	}()
	return p
}

// discard cancels p and waits until it no longer uses its buffer.
func (p *pending) discard() {
	if p == nil {
		return
	}
	p.cancel()
	<-p.done
}

// guessNext returns the likely URL of the page after cur from a raw answer,
// or nil when there is no cheap guess (page-number pagination, no cursor
// found). Before the style is detected (auto), a Link header means link
// style and anything else is tried as a cursor, as detectStyle decides.
func (c *Client) guessNext(style string, cur *url.URL, r response) *url.URL {
	if style == "auto" || style == "" {
		style = "cursor"
		if r.link != "" {
			style = "link"
		}
	}
	switch style {
	case "link":
		if r.link == "" {
			return nil
		}
		nu, err := cur.Parse(r.link)
		if err != nil || !c.sameHost(nu) {
			return nil
		}
		return nu
	case "cursor":
		cursor, ok := tailCursor(r.body, c.cfg.Params.NextCursorField)
		if !ok {
			return nil
		}
		nu := *cur
		q := nu.Query()
		q.Set(c.cfg.Params.Cursor, cursor)
		nu.RawQuery = q.Encode()
		return &nu
	}
	return nil
}

// tailCursor finds the last `"<field>":"<cursor>"` in body and returns the
// cursor. The quoted key followed by a colon can only be an object key
// (inside a JSON string its closing quote would be escaped); the last one
// is the envelope's when the envelope puts the cursor after the events,
// which is the common layout. Anything else (null, a number, no key) is no
// guess.
func tailCursor(body []byte, field string) (string, bool) {
	key := make([]byte, 0, len(field)+2)
	key = append(append(append(key, '"'), field...), '"')
	i := bytes.LastIndex(body, key)
	if i < 0 {
		return "", false
	}
	rest := bytes.TrimLeft(body[i+len(key):], " \t\r\n")
	if len(rest) == 0 || rest[0] != ':' {
		return "", false
	}
	rest = bytes.TrimLeft(rest[1:], " \t\r\n")
	if len(rest) == 0 || rest[0] != '"' {
		return "", false
	}
	end := 1
	for end < len(rest) && rest[end] != '"' {
		if rest[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(rest) {
		return "", false
	}
	var s string
	if json.Unmarshal(rest[:end+1], &s) != nil || s == "" {
		return "", false
	}
	return s, true
}
