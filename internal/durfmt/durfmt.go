// Package durfmt prints durations the way a user writes them in a config:
// 1h, 30m, 1h30m, 24h — not 1h0m0s.
package durfmt

import (
	"strings"
	"time"
)

// String is d without its trailing zero units.
func String(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
