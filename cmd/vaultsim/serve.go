package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// serveOpts are the serve flags that are not part of vaultsim.Config.
type serveOpts struct {
	addr, tokensOut, tokensDir string
	verbose                    bool
}

// parseServe parses the serve flags into a Config (Logger unset) and the
// command's own options.
func parseServe(args []string, stderr io.Writer) (vaultsim.Config, serveOpts, error) {
	fs := newFlagSet("serve", stderr)
	var cfg vaultsim.Config
	var o serveOpts
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "listen address")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the generated history, credentials and faults")
	fs.IntVar(&cfg.Orgs, "orgs", 3, "number of orgs (org_1..org_N)")
	fs.Var(timeFlag{&cfg.From}, "from", "start of the generated history (default: 7 days before --to)")
	fs.Var(timeFlag{&cfg.To}, "to", "end of the generated history, exclusive (default: now)")
	fs.Float64Var(&cfg.Rate, "rate", 2000, "mean events per hour per org")
	profile := fs.String("profile", "default", "response shape: default, page, link, camel or dates")
	faults := fs.String("faults", "", `faults, e.g. "429=0.05,500=0.02,cut=0.01,late=0.02,redeliver=0.01,revoke-after=100"`)
	fs.DurationVar(&cfg.LateDelay, "late-delay", 2*time.Hour, "how long after their timestamp late events appear")
	fs.DurationVar(&cfg.SlowDelay, "slow-delay", 2*time.Second, "delay of a slow response")
	fs.DurationVar(&cfg.Latency, "latency", 0, "latency added to every events response")
	fs.IntVar(&cfg.RetryAfter, "retry-after", 1, "Retry-After seconds of injected 429 and 503")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", envOr("VAULTSIM_JWT_SECRET", "vaultsim-dev-secret"), "HS256 key of the issued JWTs ($VAULTSIM_JWT_SECRET)")
	fs.BoolVar(&cfg.Live, "live", false, "history keeps growing up to the current time")
	fs.StringVar(&cfg.OffHost, "offhost", "", "host:port the offhost fault points Link URLs at (default 127.0.0.2:PORT)")
	// imperfections of real APIs (each off by default)
	fs.BoolVar(&cfg.OmitFinalCursor, "omit-final-cursor", false, "cursor profiles: leave the next_cursor key out of the last page instead of null")
	fs.IntVar(&cfg.PageCap, "page-cap", 0, "page profile: silently cap per_page at `N` (page P then starts at offset (P-1)*N); 0 = no cap")
	fs.BoolVar(&cfg.NoTotals, "no-totals", false, "page profile: leave total_pages out of the envelope")
	fs.BoolVar(&cfg.HasMore, "has-more", false, "page profile: add \"has_more\": true|false to the envelope")
	fs.BoolVar(&cfg.LeftOpenBounds, "left-open-bounds", false, "query bounds are (from, to] instead of [from, to)")
	fs.BoolVar(&cfg.SecondPrecision, "second-precision", false, "store and render event times truncated to whole seconds")
	fs.DurationVar(&cfg.ClockOffset, "clock-offset", 0, "skew the API's clock by this `duration` (e.g. -6h): history end, omitted to, late events, JWT expiry, Date header")
	fs.DurationVar(&cfg.RedeliverDelay, "redeliver-delay", 20*time.Minute, "how much later the copy of a redeliver fault is timestamped, in [1ms, 1h)")
	fs.StringVar(&o.tokensOut, "tokens-out", "", "write the credentials of every org to this JSON file")
	fs.StringVar(&o.tokensDir, "tokens-dir", "", "write each org's API token to DIR/<org>.token (for token_file)")
	fs.BoolVar(&o.verbose, "v", false, "log every request")
	cacheMB := fs.Int("cache-mb", 256, "MiB of rendered hours kept in memory (a day of 1M events renders to ~470 MiB)")
	if err := fs.Parse(args); err != nil {
		return cfg, o, err
	}
	if fs.NArg() > 0 {
		return cfg, o, fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if *cacheMB < 1 {
		return cfg, o, fmt.Errorf("serve: --cache-mb %d: must be at least 1", *cacheMB)
	}
	cfg.CacheBytes = *cacheMB << 20
	var err error
	if cfg.Profile, err = vaultsim.ParseProfile(*profile); err != nil {
		return cfg, o, fmt.Errorf("serve: %w", err)
	}
	if cfg.Faults, err = vaultsim.ParseFaults(*faults); err != nil {
		return cfg, o, fmt.Errorf("serve: %w", err)
	}
	return cfg, o, nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, o, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	sim, err := vaultsim.New(cfg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	// Listen before writing tokens: a caller that waits for the token
	// files must not go on to talk to whatever holds the port.
	ln, err := listen(o.addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if o.tokensOut != "" {
		b, _ := json.MarshalIndent(sim.Creds(), "", "  ")
		if err := os.WriteFile(o.tokensOut, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("write tokens: %w", err)
		}
	}
	if o.tokensDir != "" {
		if err := writeTokenFiles(o.tokensDir, sim.Creds()); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	hs := sim.HTTPServer()
	eff := sim.Config()
	base := "http://" + ln.Addr().String() + "/api"
	fmt.Fprintln(stdout, base)
	log.Info("vaultsim serving", "url", base, "profile", string(eff.Profile), "orgs", eff.Orgs, "seed", eff.Seed,
		"history", eff.From.Format(time.RFC3339)+"/"+eff.To.Format(time.RFC3339), "live", eff.Live,
		"rate", eff.Rate, "faults", eff.Faults.String(), "tokens_out", o.tokensOut, "quirks", quirks(eff))
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shCtx); err != nil {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	st := sim.Requests()
	log.Info("vaultsim stopped", "requests", st.Total, "events", st.Events)
	return nil
}

// listen binds addr. The error of a taken port says what to do, since
// the usual cause is another simulator (or any server) left running.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("serve: cannot listen on %s: the address is already in use by another process: stop it, or pick another --addr (port 0 picks a free one; the URL is printed on stdout)", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: cannot listen on %s: %w", addr, err)
	}
	return ln, nil
}

// quirks lists the imperfect-API options in effect, for the start log line.
func quirks(c vaultsim.Config) string {
	var q []string
	for _, f := range []struct {
		on   bool
		name string
	}{
		{c.OmitFinalCursor, "omit-final-cursor"},
		{c.PageCap > 0, "page-cap=" + strconv.Itoa(c.PageCap)},
		{c.NoTotals, "no-totals"},
		{c.HasMore, "has-more"},
		{c.LeftOpenBounds, "left-open-bounds"},
		{c.SecondPrecision, "second-precision"},
		{c.ClockOffset != 0, "clock-offset=" + c.ClockOffset.String()},
		{c.Faults.Redeliver > 0, "redeliver-delay=" + c.RedeliverDelay.String()},
	} {
		if f.on {
			q = append(q, f.name)
		}
	}
	return strings.Join(q, ",")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// writeTokenFiles writes one 0600 file per org holding its API token, the
// shape vaultsink's token_file expects.
func writeTokenFiles(dir string, creds []vaultsim.Creds) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("tokens dir: %w", err)
	}
	for _, c := range creds {
		p := filepath.Join(dir, c.OrgID+".token")
		if err := os.WriteFile(p, []byte(c.Token+"\n"), 0o600); err != nil {
			return fmt.Errorf("write token file: %w", err)
		}
	}
	return nil
}
