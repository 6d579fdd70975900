package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/vaultsink/vaultsink/runner"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// verifyWindow is one window's comparison.
type verifyWindow struct {
	w                source.Window
	api, sink        int
	missing, extra   []string // first few
	nMissing, nExtra int
	dups             []string
	nDups            int
	quarantined      int
}

func (v verifyWindow) ok() bool { return v.nMissing == 0 && v.nExtra == 0 && v.nDups == 0 }

const verifyShow = 5

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("verify", stderr, &c)
	org := fs.String("org", "", "only this org (default: every org)")
	from := fs.String("from", "", "first instant, RFC 3339 or date (required)")
	to := fs.String("to", "", "end, exclusive (required)")
	verbose := fs.Bool("v", false, "print every window, not only those that differ")
	if err := parseFlags(fs, args, &c); err != nil {
		return err
	}
	f, err := parseTime("from", *from)
	if err != nil {
		return err
	}
	t, err := parseTime("to", *to)
	if err != nil {
		return err
	}
	a, err := open(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	specs := a.specs
	if *org != "" {
		s, err := a.spec(*org)
		if err != nil {
			return err
		}
		specs = []runner.OrgSpec{s}
	}
	tty := isTerminal(stderr)
	var total struct{ windows, bad, api, sink, missing, extra, dups int }
	for _, s := range specs {
		rd, ok := s.Sink.(sinks.Reader)
		if !ok {
			return usageError("verify: the sink of org %s cannot be read back", s.Org.ID)
		}
		for _, w := range runner.Windows(s.Org.ID, f, t, s.Window) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			v, err := verifyOne(ctx, a.client, rd, s.Org, w)
			if err != nil {
				return fmt.Errorf("verify %s: %w", w, err)
			}
			total.windows++
			total.api += v.api
			total.sink += v.sink
			total.missing += v.nMissing
			total.extra += v.nExtra
			total.dups += v.nDups
			if !v.ok() {
				total.bad++
			}
			if !v.ok() || *verbose {
				printVerify(stdout, v)
			}
			if tty {
				fmt.Fprintf(stderr, "\rverified %d windows", total.windows)
			} else if total.windows%100 == 0 {
				a.log.Info("verify progress", "windows", total.windows)
			}
		}
	}
	if tty {
		fmt.Fprintln(stderr)
	}
	fmt.Fprintf(stdout, "verify: %d windows, %d events in the API, %d rows in the sink: %d missing, %d extra, %d duplicated; %d windows differ\n",
		total.windows, total.api, total.sink, total.missing, total.extra, total.dups, total.bad)
	if total.bad > 0 {
		return &exitError{code: exitDiffers, err: errors.New("the sink differs from the API")}
	}
	return nil
}

func printVerify(w io.Writer, v verifyWindow) {
	status := "ok"
	if !v.ok() {
		status = "DIFFERS"
	}
	fmt.Fprintf(w, "%-8s %s api=%d sink=%d missing=%d extra=%d duplicated=%d\n", status, v.w, v.api, v.sink, v.nMissing, v.nExtra, v.nDups)
	for _, x := range []struct {
		what string
		ids  []string
	}{{"missing", v.missing}, {"extra", v.extra}, {"duplicated", v.dups}} {
		if len(x.ids) > 0 {
			fmt.Fprintf(w, "         %s: %v\n", x.what, x.ids)
		}
	}
}

// verifyOne re-walks the API for w and compares its event ids with the
// sink's. Memory is one window's ids.
func verifyOne(ctx context.Context, c *source.Client, rd sinks.Reader, org source.Org, w source.Window) (verifyWindow, error) {
	v := verifyWindow{w: w}
	want := map[string]int{} // id -> times seen in the sink
	walk := func(opts source.WalkOptions) error {
		clear(want)
		v.quarantined = 0
		_, err := c.WalkWith(ctx, org, w, nil, opts, func(p source.Page) error {
			if p.Rec != nil {
				ids, ok := p.Rec.Column(source.ColEventID).(*array.String)
				if !ok {
					p.Rec.Release()
					return errors.New("event_id column is not a string array")
				}
				for i := 0; i < ids.Len(); i++ {
					want[ids.Value(i)] = 0
				}
				p.Rec.Release()
			}
			v.quarantined += len(p.Quarantined)
			return nil
		})
		return err
	}
	err := walk(source.WalkOptions{})
	if errors.Is(err, source.ErrUnsorted) {
		err = walk(source.WalkOptions{FullDedup: true}) // as the sync does
	}
	if err != nil {
		return v, fmt.Errorf("walk the API: %w", err)
	}
	v.api = len(want)
	err = rd.EventIDs(ctx, w, func(id string) error {
		v.sink++
		n, ok := want[id]
		if !ok {
			v.nExtra++
			if len(v.extra) < verifyShow {
				v.extra = append(v.extra, id)
			}
			return nil
		}
		want[id] = n + 1
		if n == 1 {
			v.nDups++
			if len(v.dups) < verifyShow {
				v.dups = append(v.dups, id)
			}
		}
		return nil
	})
	if err != nil {
		return v, fmt.Errorf("read the sink: %w", err)
	}
	for id, n := range want {
		if n == 0 {
			v.nMissing++
			v.missing = append(v.missing, id)
		}
	}
	sort.Strings(v.missing)
	if len(v.missing) > verifyShow {
		v.missing = v.missing[:verifyShow]
	}
	return v, nil
}
