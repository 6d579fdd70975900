package durfmt

import (
	"testing"
	"time"
)

func TestString(t *testing.T) {
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 24 * time.Hour: "24h", 30 * time.Minute: "30m", 90 * time.Minute: "1h30m",
		5 * time.Second: "5s", time.Hour + time.Second: "1h0m1s", 0: "0s",
	} {
		if got := String(d); got != want {
			t.Errorf("String(%v) = %q, want %q", d, got, want)
		}
	}
}
