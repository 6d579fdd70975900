// Package clip bounds text that comes from outside the process (an API's
// error message, a response body) before it is kept anywhere: in an error,
// a log line, a metric or a checkpoint. One huge message must not become a
// huge log line, nor a state document larger than its store can read back.
package clip

import (
	"strconv"
	"unicode/utf8"
)

// MessageBytes is the size an API error message is cut to.
const MessageBytes = 1 << 10

// String returns s when it is at most limit bytes long. Otherwise it returns
// a prefix of s followed by a marker giving the original length, e.g.
// "access denied for … (1572864 bytes)", the whole at most limit bytes. The
// cut falls on a UTF-8 boundary, so a valid string stays valid; trailing
// white space of the kept prefix is dropped. When limit is too small to hold
// any of s next to the marker, the marker alone is returned (longer than
// limit then).
func String(s string, limit int) string { return cut(s, limit) }

// Bytes is String for a byte slice: only the kept prefix is converted, so
// clipping a large body costs no copy of it.
func Bytes(b []byte, limit int) string { return cut(b, limit) }

func cut[T string | []byte](s T, limit int) string {
	if len(s) <= limit {
		return string(s)
	}
	marker := "… (" + strconv.Itoa(len(s)) + " bytes)"
	k := limit - len(marker)
	if k <= 0 {
		return marker
	}
	// Back off to the start of a rune: never keep half of a multi-byte
	// character (s[k] is the first byte dropped).
	for k > 0 && !utf8.RuneStart(s[k]) {
		k--
	}
	return trimRight(string(s[:k])) + marker
}

// trimRight drops trailing ASCII white space, so the marker does not
// follow a dangling newline.
func trimRight(s string) string {
	for len(s) > 0 {
		switch s[len(s)-1] {
		case ' ', '\t', '\n', '\r':
			s = s[:len(s)-1]
		default:
			return s
		}
	}
	return s
}
