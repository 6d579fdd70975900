package vaultsim

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
)

// cursor is the position after the last event of a page, bound to the org
// and the bounds of the query that produced it.
type cursor struct {
	org    string
	lo, hi int64 // query bounds, unix ns
	lastMs int64
	lastID string // 26 chars
}

var errBadCursor = errors.New("malformed cursor")

func (s *Server) encodeCursor(c cursor) string {
	raw := "1|" + c.org + "|" + strconv.FormatInt(c.lo, 10) + "|" + strconv.FormatInt(c.hi, 10) + "|" +
		strconv.FormatInt(c.lastMs, 10) + "|" + c.lastID
	return b64.EncodeToString([]byte(raw + "|" + s.cursorMAC(raw)))
}

func (s *Server) cursorMAC(raw string) string {
	m := hmac.New(sha256.New, s.cursorKey)
	m.Write([]byte(raw))
	return b64.EncodeToString(m.Sum(nil)[:9])
}

func (s *Server) decodeCursor(v string) (cursor, error) {
	b, err := b64.DecodeString(v)
	if err != nil {
		return cursor{}, errBadCursor
	}
	raw := string(b)
	i := strings.LastIndexByte(raw, '|')
	if i < 0 || !hmac.Equal([]byte(raw[i+1:]), []byte(s.cursorMAC(raw[:i]))) {
		return cursor{}, errBadCursor
	}
	f := strings.Split(raw[:i], "|")
	if len(f) != 6 || f[0] != "1" || len(f[5]) != 26 {
		return cursor{}, errBadCursor
	}
	c := cursor{org: f[1], lastID: f[5]}
	var e1, e2, e3 error
	c.lo, e1 = strconv.ParseInt(f[2], 10, 64)
	c.hi, e2 = strconv.ParseInt(f[3], 10, 64)
	c.lastMs, e3 = strconv.ParseInt(f[4], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil {
		return cursor{}, errBadCursor
	}
	return c, nil
}
