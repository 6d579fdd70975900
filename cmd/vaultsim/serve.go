package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	var cfg vaultsim.Config
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the generated history, credentials and faults")
	fs.IntVar(&cfg.Orgs, "orgs", 3, "number of orgs (org_1..org_N)")
	fs.Var(timeFlag{&cfg.From}, "from", "start of the generated history (default: 7 days before --to)")
	fs.Var(timeFlag{&cfg.To}, "to", "end of the generated history, exclusive (default: now)")
	fs.Float64Var(&cfg.Rate, "rate", 2000, "mean events per hour per org")
	profile := fs.String("profile", "default", "response shape: default, page, link, camel or dates")
	faults := fs.String("faults", "", `faults, e.g. "429=0.05,500=0.02,cut=0.01,late=0.02,revoke-after=100"`)
	fs.DurationVar(&cfg.LateDelay, "late-delay", 2*time.Hour, "how long after their timestamp late events appear")
	fs.DurationVar(&cfg.SlowDelay, "slow-delay", 2*time.Second, "delay of a slow response")
	fs.DurationVar(&cfg.Latency, "latency", 0, "latency added to every events response")
	fs.IntVar(&cfg.RetryAfter, "retry-after", 1, "Retry-After seconds of injected 429 and 503")
	fs.StringVar(&cfg.JWTSecret, "jwt-secret", envOr("VAULTSIM_JWT_SECRET", "vaultsim-dev-secret"), "HS256 key of the issued JWTs ($VAULTSIM_JWT_SECRET)")
	fs.BoolVar(&cfg.Live, "live", false, "history keeps growing up to the current time")
	fs.StringVar(&cfg.OffHost, "offhost", "", "host:port the offhost fault points Link URLs at (default 127.0.0.2:PORT)")
	tokensOut := fs.String("tokens-out", "", "write the credentials of every org to this JSON file")
	tokensDir := fs.String("tokens-dir", "", "write each org's API token to DIR/<org>.token (for token_file)")
	verbose := fs.Bool("v", false, "log every request")
	cacheMB := fs.Int("cache-mb", 256, "MiB of rendered hours kept in memory (a day of 1M events renders to ~470 MiB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve: unexpected argument %q", fs.Arg(0))
	}
	if *cacheMB < 1 {
		return fmt.Errorf("serve: --cache-mb %d: must be at least 1", *cacheMB)
	}
	cfg.CacheBytes = *cacheMB << 20
	var err error
	if cfg.Profile, err = vaultsim.ParseProfile(*profile); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if cfg.Faults, err = vaultsim.ParseFaults(*faults); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	sim, err := vaultsim.New(cfg)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if *tokensOut != "" {
		b, _ := json.MarshalIndent(sim.Creds(), "", "  ")
		if err := os.WriteFile(*tokensOut, append(b, '\n'), 0o600); err != nil {
			return fmt.Errorf("write tokens: %w", err)
		}
	}
	if *tokensDir != "" {
		if err := writeTokenFiles(*tokensDir, sim.Creds()); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("serve: listen: %w", err)
	}
	hs := sim.HTTPServer()
	eff := sim.Config()
	base := "http://" + ln.Addr().String() + "/api"
	fmt.Fprintln(stdout, base)
	log.Info("vaultsim serving", "url", base, "profile", string(eff.Profile), "orgs", eff.Orgs, "seed", eff.Seed,
		"history", eff.From.Format(time.RFC3339)+"/"+eff.To.Format(time.RFC3339), "live", eff.Live,
		"rate", eff.Rate, "faults", eff.Faults.String(), "tokens_out", *tokensOut)
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
