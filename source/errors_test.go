package source_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vaultsink/vaultsink/internal/clip"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/source"
)

// hugeMessage is the size of the error messages below: larger than the
// S3 checkpoint store reads back.
const hugeMessage = 3 << 19 // 1.5 MiB

func jsonError(code, message string) []byte {
	b, err := json.Marshal(map[string]any{"error": map[string]string{"code": code, "message": message}})
	if err != nil {
		panic(err)
	}
	return b
}

// TestAPIErrorClipped: whatever size of error body the API answers with,
// the error (and so the summary, the logs and the checkpoint's last_error
// it goes to) stays about a KiB, ends with the original length and is
// valid UTF-8.
func TestAPIErrorClipped(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      []byte
		class     error
		wantParts []string
	}{
		{"403 JSON", 403, jsonError("forbidden", strings.Repeat("x", hugeMessage)), source.ErrAuth,
			[]string{"HTTP 403 forbidden", "… (1572864 bytes)", "events scope"}},
		{"403 JSON multibyte", 403, jsonError("forbidden", strings.Repeat("€", hugeMessage/3)), source.ErrAuth,
			[]string{"HTTP 403", "€… (1572864 bytes)"}},
		{"403 not JSON", 403, bytes.Repeat([]byte("<p>denied</p>\n"), hugeMessage/14), source.ErrAuth,
			[]string{"HTTP 403", "<p>denied</p>", " bytes)"}},
		{"400 huge code", 400, jsonError(strings.Repeat("c", hugeMessage), "bad"), source.ErrRequest,
			[]string{"HTTP 400 ccc", "… (1572864 bytes)", `"bad"`}},
		{"503 JSON", 503, jsonError("unavailable", strings.Repeat("y", hugeMessage)), source.ErrRetriesExhausted,
			[]string{"HTTP 503", "… (1572864 bytes)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write(tc.body)
			}))
			t.Cleanup(srv.Close)
			var logs bytes.Buffer
			log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c := newClient(t, srv.URL, func(c *source.Config) { c.Retry.MaxAttempts = 3 }, log, nil)
			org := source.Org{ID: "org_1", Credential: source.Credential{Token: secret.New("vt_x")}}
			_, err := walk(t, c, org, win)
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want %v", err, tc.class)
			}
			msg := err.Error()
			if len(msg) > 2*clip.MessageBytes {
				t.Fatalf("error of %d bytes: %.300s…", len(msg), msg)
			}
			if !utf8.ValidString(msg) {
				t.Fatalf("error is not valid UTF-8: %q", msg)
			}
			for _, p := range tc.wantParts {
				if !strings.Contains(msg, p) {
					t.Errorf("error %q does not contain %q", msg, p)
				}
			}
			for _, line := range strings.Split(logs.String(), "\n") {
				if len(line) > 4*clip.MessageBytes {
					t.Errorf("log line of %d bytes: %.200s…", len(line), line)
				}
			}
		})
	}
}

// TestAPIErrorQuotedBounded: a message of control characters grows when
// quoted; Error still stays bounded, even for an APIError not made by the
// client.
func TestAPIErrorQuotedBounded(t *testing.T) {
	e := &source.APIError{Org: "org_1", Status: 403, Code: strings.Repeat("k", 5000), Message: strings.Repeat("\x01\xff", hugeMessage/2)}
	if n := len(e.Error()); n > 3*clip.MessageBytes {
		t.Fatalf("Error() is %d bytes", n)
	}
	short := &source.APIError{Org: "org_1", Status: 403, Code: "forbidden", Message: "no scope", Hint: "check"}
	if got, want := short.Error(), `org org_1: HTTP 403 forbidden: "no scope" (check)`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
