package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestStringShortUnchanged(t *testing.T) {
	for _, s := range []string{"", "short", strings.Repeat("a", 1024)} {
		if got := String(s, 1024); got != s {
			t.Errorf("String(%d bytes, 1024) changed it to %d bytes", len(s), len(got))
		}
	}
}

func TestStringBoundaries(t *testing.T) {
	s := strings.Repeat("a", 1025) // one byte over
	got := String(s, 1024)
	if len(got) > 1024 {
		t.Fatalf("len %d > 1024", len(got))
	}
	if !strings.HasSuffix(got, "… (1025 bytes)") || !strings.HasPrefix(got, "aaaa") {
		t.Fatalf("got %q", got)
	}
	if want := 1024 - len("… (1025 bytes)"); len(got)-len("… (1025 bytes)") != want {
		t.Fatalf("kept %d bytes of s, want %d", len(got)-len("… (1025 bytes)"), want)
	}

	huge := strings.Repeat("x", 1572864)
	got = String(huge, MessageBytes)
	if len(got) > MessageBytes || !strings.HasSuffix(got, "… (1572864 bytes)") {
		t.Fatalf("huge: %d bytes, ends %q", len(got), got[max(0, len(got)-30):])
	}
}

// TestStringUTF8: whatever byte the cut would fall on inside a multi-byte
// character, the result stays valid UTF-8 and within max.
func TestStringUTF8(t *testing.T) {
	for _, r := range []string{"é", "€", "𝄞"} { // 2, 3 and 4 bytes
		for pad := 0; pad < 4; pad++ {
			s := strings.Repeat("a", pad) + strings.Repeat(r, 600)
			for max := 20; max < 60; max++ {
				got := String(s, max)
				if len(got) > max {
					t.Fatalf("%q pad %d max %d: len %d", r, pad, max, len(got))
				}
				if !utf8.ValidString(got) {
					t.Fatalf("%q pad %d max %d: invalid UTF-8 %q", r, pad, max, got)
				}
				prefix, _, ok := strings.Cut(got, "… (")
				if !ok || !strings.HasPrefix(s, prefix) {
					t.Fatalf("%q pad %d max %d: %q is not a prefix and a marker", r, pad, max, got)
				}
			}
		}
	}
}

func TestStringTinyMax(t *testing.T) {
	if got := String(strings.Repeat("a", 5000), 4); got != "… (5000 bytes)" {
		t.Fatalf("got %q, want the marker alone", got)
	}
}

func TestStringTrimsTrailingSpace(t *testing.T) {
	s := "line one\n\n" + strings.Repeat(" ", 50) + strings.Repeat("z", 100)
	got := String(s, 40)
	if !strings.HasPrefix(got, "line one… (") {
		t.Fatalf("got %q", got)
	}
}

func TestBytesMatchesString(t *testing.T) {
	for _, s := range []string{"", "abc", strings.Repeat("€", 1000), " <html>" + strings.Repeat("x", 5000)} {
		for _, limit := range []int{0, 10, 30, 200, 1024, 5000} {
			if a, b := String(s, limit), Bytes([]byte(s), limit); a != b {
				t.Fatalf("String %q != Bytes %q", a, b)
			}
		}
	}
}
