package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// ansi matches the terminal control sequences the bars are drawn with.
var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

// TestBackfillBarsOnTerminal: on a terminal backfill draws a bar per org,
// and the log lines print above the bars, whole, never through them.
func TestBackfillBarsOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 160}); err != nil {
		t.Fatal(err)
	}
	var screen bytes.Buffer
	read := make(chan struct{})
	go func() {
		_, _ = io.Copy(&screen, ptmx)
		close(read)
	}()

	e := newE2E(t, e2eOpts{rate: 300, latency: 5 * time.Millisecond, hours: 6})
	var out bytes.Buffer
	err = Run(context.Background(), []string{"backfill", "--config", e.cfg, "--org", "org_1,org_2", "--log-level", "info",
		"--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339)}, &out, tty)
	_ = tty.Close()
	select {
	case <-read:
	case <-time.After(5 * time.Second):
		t.Fatal("the terminal's output did not end")
	}
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out.String())
	}
	text := ansi.ReplaceAllString(screen.String(), "")
	logLines, barLines := 0, 0
	for _, l := range strings.FieldsFunc(text, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.TrimSpace(l)
		switch {
		case strings.Contains(l, `"msg"`):
			logLines++
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Errorf("a log line was broken by the bars: %q", l)
			}
		case strings.Contains(l, "windows") && strings.Contains(l, "events/s"):
			barLines++
			if !strings.HasPrefix(l, "org_1") && !strings.HasPrefix(l, "org_2") {
				t.Errorf("bar line without its org: %q", l)
			}
		}
	}
	if logLines == 0 || barLines == 0 {
		t.Fatalf("%d log lines, %d bar lines on the terminal:\n%q", logLines, barLines, text)
	}
	for _, want := range []string{"org_1", "org_2", "elapsed ", "done"} {
		if !strings.Contains(text, want) {
			t.Errorf("the terminal never showed %q:\n%q", want, text)
		}
	}
	if strings.Contains(text, "backfill progress") {
		t.Errorf("progress log lines on a terminal, where the bars say it")
	}
}
