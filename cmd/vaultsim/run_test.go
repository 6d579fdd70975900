package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// The truth command equals a full HTTP walk of `vaultsim serve`.
func TestTruthEqualsServedWalk(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens.json")
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncBuf
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--seed", "9", "--orgs", "2", "--rate", "400",
			"--from", "2026-06-01", "--to", "2026-06-03", "--tokens-out", tokens}, &out, &errOut)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	var base string
	for i := 0; base == ""; i++ {
		if i > 500 {
			t.Fatalf("serve did not start: %s", errOut.String())
		}
		time.Sleep(10 * time.Millisecond)
		base = strings.TrimSpace(out.String())
	}
	raw, err := os.ReadFile(tokens)
	if err != nil {
		t.Fatal(err)
	}
	var creds []vaultsim.Creds
	if err := json.Unmarshal(raw, &creds); err != nil || len(creds) != 2 || creds[1].OrgID != "org_2" || creds[1].JWT == "" {
		t.Fatalf("tokens file: %s (%v)", raw, err)
	}

	from, to := "2026-06-02T03:00:00Z", "2026-06-02T09:30:00Z"
	var ids []string
	cur := ""
	for {
		u := base + "/events/v1?from=" + from + "&to=" + to + "&limit=1000"
		if cur != "" {
			u += "&cursor=" + cur
		}
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", "Bearer "+creds[1].Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var p struct {
			Data       []struct{ ID string }
			NextCursor *string `json:"next_cursor"`
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || json.Unmarshal(b, &p) != nil {
			t.Fatalf("%d %.200s", res.StatusCode, b)
		}
		for _, e := range p.Data {
			ids = append(ids, e.ID)
		}
		if p.NextCursor == nil {
			break
		}
		cur = *p.NextCursor
	}

	var tout, terr bytes.Buffer
	if err := Run(context.Background(), []string{"truth", "--seed", "9", "--rate", "400", "--org", "org_2", "--from", from, "--to", to}, &tout, &terr); err != nil {
		t.Fatalf("truth: %v %s", err, terr.String())
	}
	var tr truthResult
	if err := json.Unmarshal(tout.Bytes(), &tr); err != nil {
		t.Fatalf("truth output %q: %v", tout.String(), err)
	}
	if len(ids) < 1000 || tr.Count != len(ids) || tr.Digest != vaultsim.DigestIDs(ids) {
		t.Fatalf("truth %d %s, walk %d %s", tr.Count, tr.Digest, len(ids), vaultsim.DigestIDs(ids))
	}
}

func TestRunErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"serve", "--profile", "xml"},
		{"serve", "--faults", "418=1"},
		{"serve", "--from", "yesterday"},
		{"serve", "--cache-mb", "0"},
		{"truth", "--from", "2026-06-02"},
		{"truth", "--from", "2026-06-02", "--to", "2026-06-01"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if err := Run(context.Background(), args, io.Discard, io.Discard); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestServeFlags(t *testing.T) {
	cfg, o, err := parseServe([]string{"--addr", "127.0.0.1:0", "--seed", "5", "--profile", "page",
		"--faults", "redeliver=0.01,late=0.02", "--redeliver-delay", "7m",
		"--omit-final-cursor", "--page-cap", "250", "--no-totals", "--has-more",
		"--left-open-bounds", "--second-precision", "--clock-offset", "-6h", "--tokens-out", "t.json"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "127.0.0.1:0" || o.tokensOut != "t.json" || cfg.Seed != 5 || cfg.Profile != vaultsim.ProfilePage {
		t.Fatalf("options %+v, config %+v", o, cfg)
	}
	if !cfg.OmitFinalCursor || cfg.PageCap != 250 || !cfg.NoTotals || !cfg.HasMore || !cfg.LeftOpenBounds ||
		!cfg.SecondPrecision || cfg.ClockOffset != -6*time.Hour || cfg.RedeliverDelay != 7*time.Minute ||
		cfg.Faults.Redeliver != 0.01 || cfg.Faults.Late != 0.02 {
		t.Fatalf("config %+v", cfg)
	}
	if _, err := vaultsim.New(cfg); err != nil {
		t.Fatalf("parsed config rejected: %v", err)
	}

	// every option is off by default, and the defaults equal the package's
	cfg, _, err = parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.OmitFinalCursor || cfg.PageCap != 0 || cfg.NoTotals || cfg.HasMore || cfg.LeftOpenBounds ||
		cfg.SecondPrecision || cfg.ClockOffset != 0 || cfg.Faults.Redeliver != 0 || cfg.RedeliverDelay != 20*time.Minute {
		t.Fatalf("defaults %+v", cfg)
	}

	// documented in serve -h and in the command usage
	var help bytes.Buffer
	_, _, _ = parseServe([]string{"-h"}, &help)
	var usage bytes.Buffer
	if err := Run(context.Background(), []string{"help"}, &usage, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"omit-final-cursor", "page-cap", "no-totals", "has-more", "left-open-bounds",
		"second-precision", "clock-offset", "redeliver-delay"} {
		if !strings.Contains(help.String(), "-"+f) || !strings.Contains(usage.String(), "--"+f) {
			t.Errorf("--%s is not documented", f)
		}
	}
	if !strings.Contains(help.String(), "redeliver=") || !strings.Contains(usage.String(), "redeliver=") {
		t.Error("the redeliver fault is not documented")
	}

	for _, args := range [][]string{
		{"--page-cap", "x"},
		{"--clock-offset", "6"},
		{"--redeliver-delay", "soon"},
		{"--faults", "redeliver=2"},
	} {
		if _, _, err := parseServe(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	// values the flags parse but the simulator refuses fail serve before it listens
	for _, args := range [][]string{
		{"--page-cap", "-1"},
		{"--redeliver-delay", "1h"},
		{"--redeliver-delay", "500ms", "--second-precision"},
	} {
		if err := Run(context.Background(), append([]string{"serve", "--addr", "127.0.0.1:0"}, args...), io.Discard, io.Discard); err == nil {
			t.Errorf("serve %v accepted", args)
		}
	}
}
