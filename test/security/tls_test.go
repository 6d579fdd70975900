package security_test

import (
	"bytes"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func newLogger(w io.Writer) *slog.Logger {
	if w == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestTLSVerifiedByDefault: a server with a self-signed certificate is
// refused unless its CA is configured (tls.ca_file); insecure_skip_verify
// works but warns loudly.
func TestTLSVerifiedByDefault(t *testing.T) {
	sim := vaultsim.Start(t, vaultsim.Config{Seed: 4, Orgs: 1, Rate: 100})
	ts := httptest.NewTLSServer(sim.Handler())
	t.Cleanup(ts.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Hour)
	for _, tc := range []struct {
		name    string
		mod     func(*source.Config)
		wantErr string // "" = must succeed
		wantLog string
	}{
		{"default", nil, "certificate", ""},
		{"ca_file", func(c *source.Config) { c.TLS.CAFile = ca }, "", ""},
		{"insecure_skip_verify", func(c *source.Config) { c.TLS.InsecureSkipVerify = true }, "", "verification is OFF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuf
			c := newClient(t, ts.URL+"/api", tc.mod, &logs)
			err := walkAll(c, sim, start)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("walk: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("want an error about %q, got %v", tc.wantErr, err)
			}
			if tc.wantLog != "" && !strings.Contains(logs.String(), tc.wantLog) {
				t.Fatalf("no warning %q in the log:\n%s", tc.wantLog, logs.String())
			}
		})
	}
}
