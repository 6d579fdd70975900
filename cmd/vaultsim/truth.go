package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// truthResult is the one JSON line `vaultsim truth` prints.
type truthResult struct {
	OrgID  string `json:"org_id"`
	From   string `json:"from"`
	To     string `json:"to"`
	Count  int    `json:"count"`
	Digest string `json:"digest"` // sha256 hex of the sorted ids joined by "\n"
}

func runTruth(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("truth", stderr)
	var from, to time.Time
	seed := fs.Uint64("seed", 1, "seed of the served history")
	fs.Var(timeFlag{&from}, "from", "window start, inclusive (RFC 3339 or YYYY-MM-DD)")
	fs.Var(timeFlag{&to}, "to", "window end, exclusive (RFC 3339 or YYYY-MM-DD)")
	org := fs.String("org", "org_1", "org id")
	rate := fs.Float64("rate", 2000, "mean events per hour per org, as served")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if from.IsZero() || to.IsZero() {
		return errors.New("truth: --from and --to are required")
	}
	if !from.Before(to) {
		return errors.New("truth: --from must be before --to")
	}
	n, digest, err := vaultsim.TruthOf(*seed, *rate, *org, from, to)
	if err != nil {
		return fmt.Errorf("truth: %w", err)
	}
	b, _ := json.Marshal(truthResult{OrgID: *org, From: from.UTC().Format(time.RFC3339Nano), To: to.UTC().Format(time.RFC3339Nano), Count: n, Digest: digest})
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}
