package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// Bounds of one part of check-config --connect: an org's token check, and
// a sink's or the checkpoint store's whole check (several requests).
const (
	orgCheckTimeout  = 30 * time.Second
	partCheckTimeout = 90 * time.Second
)

// checkPart is one part check-config --connect checks: an org, the
// checkpoint store, a sink section.
type checkPart struct {
	label string
	org   bool // an org's token check: bounded by orgCheckTimeout and cfg.Concurrency
	run   func(ctx context.Context) []check.Result
}

// checkConnect is `check-config --connect`: it checks every org's token,
// the checkpoint store and each sink section the orgs use, each part on
// its own, so a part that fails (refused credentials, an unreachable
// store) does not keep the others from being checked. Nothing is built as
// a run builds it: stores and sinks check themselves from their
// configuration (checkpoint.Checker, sinks.Checker), which creates
// nothing. It prints one aligned line per finding, in config order, with a
// hint under each one that failed, and returns an exit error (1) when any
// failed.
func checkConnect(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	var parts []checkPart
	parts = append(parts, orgParts(cfg, log)...)
	parts = append(parts, checkPart{label: "checkpoint " + cfg.Checkpoint.Type, run: func(ctx context.Context) []check.Result {
		ch, ok := cfg.Checkpoint.Config.(checkpoint.Checker)
		if !ok {
			return []check.Result{check.Warnf("its first use tells", "checkpoint type %s has no check", cfg.Checkpoint.Type)}
		}
		return ch.Check(ctx, "checkpoint")
	}})
	parts = append(parts, sinkParts(cfg)...)

	width := 0
	for _, p := range parts {
		width = max(width, len(p.label))
	}
	counts := map[check.Status]int{}
	runParts(ctx, parts, cfg.Concurrency, func(p checkPart, rs []check.Result) {
		for _, r := range rs {
			counts[r.Status]++
			fmt.Fprintf(stdout, "%-*s %-4s %s\n", width, p.label, r.Status, r.Msg)
			if r.Hint != "" && r.Status != check.OK {
				fmt.Fprintf(stdout, "%-*s      hint: %s\n", width, "", r.Hint)
			}
		}
	})
	fmt.Fprintf(stdout, "%d ok, %d warn, %d FAIL\n", counts[check.OK], counts[check.Warn], counts[check.Fail])
	if n := counts[check.Fail]; n > 0 {
		return &exitError{code: exitFailed, err: fmt.Errorf("check-config --connect: %d checks failed", n)}
	}
	return nil
}

// runParts runs the parts at once (orgs at most concurrency at a time,
// as a run pulls them) and hands each part's findings to report in the
// parts' order, as soon as it and those before it are done.
func runParts(ctx context.Context, parts []checkPart, concurrency int, report func(checkPart, []check.Result)) {
	results := make([][]check.Result, len(parts))
	done := make([]chan struct{}, len(parts))
	orgs := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	for i, p := range parts {
		done[i] = make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[i])
			timeout := partCheckTimeout
			if p.org {
				orgs <- struct{}{}
				defer func() { <-orgs }()
				timeout = orgCheckTimeout
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			results[i] = p.run(ctx)
		}()
	}
	for i, p := range parts {
		<-done[i]
		report(p, results[i])
	}
	wg.Wait()
}

// orgParts checks each org's token with one small request (the client's
// Check), which also shows the pagination style.
func orgParts(cfg *config.Config, log *slog.Logger) []checkPart {
	client, err := source.NewClient(cfg.Source, log, prometheus.NewRegistry())
	if err != nil {
		return []checkPart{{label: "source", run: func(context.Context) []check.Result {
			return []check.Result{check.Failf("fix source: as the message says", "%v", err)}
		}}}
	}
	var parts []checkPart
	for i, o := range cfg.Orgs {
		r, _ := cfg.OrgSettings(o.ID)
		org := r.Org
		parts = append(parts, checkPart{label: "org " + o.ID, org: true, run: func(ctx context.Context) []check.Result {
			style, err := client.Check(ctx, org)
			switch {
			case err != nil:
				return []check.Result{check.Failf(orgHint(i, o, err), "%v", err)}
			case style == "":
				return []check.Result{check.OKf("token accepted; pagination: not evident from a one-event answer (auto decides per walk)")}
			}
			return []check.Result{check.OKf("token accepted; pagination: %s", style)}
		}})
	}
	return parts
}

// orgHint names what to check for org o (the i-th) whose check failed with err.
func orgHint(i int, o config.Org, err error) string {
	if !errors.Is(err, source.ErrAuth) {
		if errors.Is(err, source.ErrRequest) {
			return "the API refused the request: check source.base_url and source.params"
		}
		return "check source.base_url and that the network reaches it"
	}
	key := "token"
	switch {
	case o.TokenFile != "":
		key = "token_file (" + o.TokenFile + ")"
	case o.TokenEnv != "":
		key = "token_env ($" + o.TokenEnv + ")"
	}
	return fmt.Sprintf("check orgs[%d].%s: the token of org %s, which must be valid and hold its audit-log scope", i, key, o.ID)
}

// sinkParts checks each sink section some org uses, once, under its path
// in the config ("sink", "orgs[2].sink").
func sinkParts(cfg *config.Config) []checkPart {
	var parts []checkPart
	seen := map[*config.SinkSection]bool{}
	for i, o := range cfg.Orgs {
		r, _ := cfg.OrgSettings(o.ID)
		if seen[r.SinkSection] {
			continue
		}
		seen[r.SinkSection] = true
		path := "sink"
		if r.SinkSection != &cfg.Sink {
			path = fmt.Sprintf("orgs[%d].sink", i)
		}
		sec := r.SinkSection
		parts = append(parts, checkPart{label: path + " " + sec.Type, run: func(ctx context.Context) []check.Result {
			ch, ok := sec.Config.(sinks.Checker)
			if !ok {
				return []check.Result{check.Warnf("its first sync tells", "sink type %s has no check", sec.Type)}
			}
			return ch.Check(ctx, path)
		}})
	}
	return parts
}
