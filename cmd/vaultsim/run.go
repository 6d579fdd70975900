package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

const usage = `usage:
  vaultsim serve [flags]   serve the simulated Events API (see vaultsim serve -h)
  vaultsim truth [flags]   print the exact count and digest of a window (see vaultsim truth -h)

serve imitates imperfect real APIs on request (all off by default):
  --omit-final-cursor        last page without the next_cursor key (cursor profiles)
  --page-cap N               per_page silently capped at N (page profile)
  --no-totals                no total_pages in the envelope (page profile)
  --has-more                 "has_more": true|false in the envelope (page profile)
  --left-open-bounds         query bounds (from, to] instead of [from, to)
  --second-precision         event times truncated to whole seconds
  --clock-offset DURATION    the API's clock is now+DURATION (also its Date header)
  --faults redeliver=RATE    that share of events is served again, same id,
  --redeliver-delay DURATION   DURATION (default 20m, < 1h) after the original
  --faults badts=RATE        that share of events has an unparseable timestamp
`

// Run executes one vaultsim command; args exclude the program name.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "truth":
		return runTruth(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// timeFlag accepts RFC 3339 or YYYY-MM-DD (midnight UTC).
type timeFlag struct{ t *time.Time }

func (f timeFlag) String() string {
	if f.t == nil || f.t.IsZero() {
		return ""
	}
	return f.t.Format(time.RFC3339)
}

func (f timeFlag) Set(s string) error {
	if t, err := time.Parse("2006-01-02", s); err == nil {
		*f.t = t
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return fmt.Errorf("want RFC 3339 or YYYY-MM-DD, got %q", s)
	}
	*f.t = t.UTC()
	return nil
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("vaultsim "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
