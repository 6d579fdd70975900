package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/internal/durfmt"
)

// console is a command's stderr. Its log lines and notices all go through
// it, in one format: through the command's logger once it has one, as a
// plain "vaultsink: …" line before (a config error). While backfill draws
// progress bars on a terminal, what is written goes to the bars'
// container, which prints it above the bars instead of through them.
type console struct {
	err io.Writer // the real stderr

	mu     sync.Mutex
	routed io.Writer // the progress container, while bars are drawn
	log    *slog.Logger
}

var _ io.Writer = (*console)(nil)

func newConsole(stderr io.Writer) *console { return &console{err: stderr} }

type consoleKey struct{}

// withConsole lets main's signal handler share Run's console.
func withConsole(ctx context.Context, c *console) context.Context {
	return context.WithValue(ctx, consoleKey{}, c)
}

// consoleFrom is the console main put in ctx, or a new one on stderr.
func consoleFrom(ctx context.Context, stderr io.Writer) *console {
	if c, ok := ctx.Value(consoleKey{}).(*console); ok {
		return c
	}
	return newConsole(stderr)
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.routed != nil {
		n, err := c.routed.Write(p)
		if err == nil {
			return n, nil
		}
		c.routed = nil // the container has shut down
	}
	return c.err.Write(p)
}

// route sends what is written to w until the returned function is called.
func (c *console) route(w io.Writer) (restore func()) {
	c.mu.Lock()
	c.routed = w
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.routed = nil
		c.mu.Unlock()
	}
}

// tty reports whether stderr is a terminal.
func (c *console) tty() bool { return isTerminal(c.err) }

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (c *console) setLogger(l *slog.Logger) {
	c.mu.Lock()
	c.log = l
	c.mu.Unlock()
}

func (c *console) logger() *slog.Logger {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log
}

// notice tells the operator something that is not the command's result:
// a stop signal, a forced exit.
func (c *console) notice(level slog.Level, msg string) {
	if l := c.logger(); l != nil {
		l.Log(context.Background(), level, msg)
		return
	}
	fmt.Fprintln(c, "vaultsink: "+msg)
}

// exit reports msg and ends the process at once (a second signal, a stop
// that did not end in time). The bars' container prints only at its next
// refresh, which will not come: msg goes straight to stderr, below them.
func (c *console) exit(code int, msg string) {
	c.mu.Lock()
	c.routed = nil
	c.mu.Unlock()
	c.notice(slog.LevelError, msg)
	os.Exit(code)
}

// report prints the error a command ended with: a usage error, or any
// error before the logger exists, as a plain line; others through the
// logger, with the exit status.
func (c *console) report(err error) {
	if err == nil || err.Error() == "" {
		return
	}
	code := exitStatus(err)
	l := c.logger()
	if code == exitUsage || l == nil {
		fmt.Fprintln(c, "vaultsink:", err)
		return
	}
	level := slog.LevelError
	if code == exitDiffers || code == exitInterrupted {
		level = slog.LevelWarn
	}
	l.Log(context.Background(), level, "exiting", "status", code, "err", err)
}

// newLogger builds the logger of config section l writing to w, the
// command's console (the console's logger from then on) or another writer:
// text on a terminal, JSON otherwise (log.format auto). Durations are
// seconds (a float) in JSON, and written as a config writes them in text.
func newLogger(l config.Log, w io.Writer) (*slog.Logger, error) {
	c, ok := w.(*console)
	if !ok {
		c = newConsole(w)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, usageError("log.level: %q: must be debug, info, warn or error", l.Level)
	}
	format := l.Format
	if format == "auto" {
		format = "json"
		if c.tty() {
			format = "text"
		}
	}
	var log *slog.Logger
	if format == "text" {
		log = slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAs(durfmt.String)}))
	} else {
		log = slog.New(slog.NewJSONHandler(c, &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAs(seconds)}))
	}
	c.setLogger(log)
	return log, nil
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// durationsAs rewrites every duration attribute with f.
func durationsAs[T string | float64](f func(time.Duration) T) func([]string, slog.Attr) slog.Attr {
	return func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() == slog.KindDuration {
			return slog.Any(a.Key, f(a.Value.Duration()))
		}
		return a
	}
}
