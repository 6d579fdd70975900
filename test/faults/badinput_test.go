package faults_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHugePageRefused: a 200 MB page (streamed by the handler, never held
// in this test's memory) is refused past source.max_page_bytes with an
// error that names the setting, and the process stays small.
func TestHugePageRefused(t *testing.T) {
	const pageBytes = 200 << 20
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		rec := []byte(`{"id":"evt_x","timestamp":"2026-06-01T10:00:00Z","title":"` + strings.Repeat("x", 900) + `"},`)
		bw := bufio.NewWriterSize(w, 64<<10)
		if _, err := bw.WriteString(`{"data":[`); err != nil {
			return
		}
		for n := 0; n < pageBytes; n += len(rec) {
			if _, err := bw.Write(rec); err != nil {
				return // the client stopped reading: as it should
			}
		}
		_, _ = bw.WriteString(`{}],"next_cursor":null}`)
		_ = bw.Flush()
	}))
	t.Cleanup(srv.Close)
	start := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	for _, tc := range []struct {
		name   string
		extra  string
		maxRSS int64
	}{
		{"max_page_bytes 8MiB", "  max_page_bytes: 8388608\n", 120 << 20},
		{"default 64MiB", "", 250 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, cfgOpts{url: srv.URL + "/api", tokens: map[string]string{"org_big": "vt_test_token"}, start: start, extra: tc.extra})
			r := run(t, "sync", "--config", e.cfg)
			if r.code != 1 || !strings.Contains(lineOf(r.stdout, "org_big"), "max_page_bytes") {
				t.Fatalf("want exit 1 naming source.max_page_bytes, got %d\n%s\n%s", r.code, r.stdout, tailLines(r.stderr, 5))
			}
			t.Logf("peak RSS %d MiB", r.maxRSS>>20)
			if r.maxRSS > tc.maxRSS {
				t.Errorf("peak RSS %d MiB for a refused page, want under %d MiB", r.maxRSS>>20, tc.maxRSS>>20)
			}
			if files := parquetFiles(t, e.out); len(files) != 0 {
				t.Errorf("files written: %v", files)
			}
		})
	}
}

// TestBadRecordsEndToEnd: a page mixing good records with every kind of
// bad one, through the CLI: good rows land in Parquet, each bad record in
// the window's quarantine file (0600, one JSON object per line, with its
// reason and raw JSON), none silently dropped, and the run succeeds.
func TestBadRecordsEndToEnd(t *testing.T) {
	start := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour)
	bad := map[string]string{ // reason -> record; %s is a timestamp in the window
		"invalid UTF-8":            "{\"id\":\"b1\",\"timestamp\":\"%s\",\"title\":\"bad \xff byte\"}",
		"missing timestamp":        `{"id":"b2","action":"X"}`,
		"unparseable timestamp":    `{"id":"b3","timestamp":"yesterday at noon"}`,
		"field too large":          `{"id":"b4","timestamp":"%s","title":"` + strings.Repeat("y", 2<<20) + `"}`,
		"nesting too deep":         `{"id":"b5","timestamp":"%s","detail":` + strings.Repeat("[", 2000) + strings.Repeat("]", 2000) + `}`,
		"not a JSON object":        `"just a string"`,
		"org mismatch":             `{"id":"b7","timestamp":"%s","org_id":"org_other"}`,
		"timestamp outside window": `{"id":"b8","timestamp":"1999-01-01T00:00:00Z"}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, err := time.Parse(time.RFC3339, r.URL.Query().Get("from"))
		if err != nil {
			http.Error(w, `{"error":{"code":"bad_from","message":"from"}}`, http.StatusBadRequest)
			return
		}
		ts := func(s int) string { return from.Add(time.Duration(s) * time.Second).Format(time.RFC3339) }
		elems := []string{
			fmt.Sprintf(`{"id":"g1-%d","timestamp":"%s","action":"LOGIN"}`, from.Unix(), ts(1)),
			fmt.Sprintf(`{"id":"g2-%d","timestamp":"%s","action":42,"actor":{"id":7}}`, from.Unix(), ts(2)),
		}
		for _, rec := range bad {
			if strings.Contains(rec, "%s") {
				rec = fmt.Sprintf(rec, ts(3))
			}
			elems = append(elems, rec)
		}
		elems = append(elems, fmt.Sprintf(`{"id":"g3-%d","timestamp":"%s"}`, from.Unix(), ts(4)))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":[%s],"next_cursor":null}`, strings.Join(elems, ","))
	}))
	t.Cleanup(srv.Close)
	e := newEnv(t, cfgOpts{url: srv.URL + "/api", tokens: map[string]string{"org_bad": "vt_test_token"}, start: start})
	r := run(t, "sync", "--config", e.cfg)
	if r.code != 0 {
		t.Fatalf("sync: exit %d\n%s\n%s", r.code, r.stdout, tailLines(r.stderr, 10))
	}
	got := idsByOrg(t, e.out)["org_bad"]
	if len(got) != 2*3 {
		t.Fatalf("%d good rows in Parquet, want 6 (3 per window): %v", len(got), got)
	}
	var qfiles []string
	_ = filepath.Walk(e.out, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasSuffix(p, ".jsonl") {
			qfiles = append(qfiles, p)
		}
		return nil
	})
	if len(qfiles) != 2 {
		t.Fatalf("quarantine files %v, want one per window", qfiles)
	}
	for _, p := range qfiles {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		reasons := map[string]int{}
		for _, line := range bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n")) {
			var q struct {
				Org, Window, Reason, Raw string
			}
			var raw map[string]any
			if err := json.Unmarshal(line, &raw); err != nil {
				t.Fatalf("%s: a line is not JSON: %v", p, err)
			}
			q.Org, _ = raw["org_id"].(string)
			q.Reason, _ = raw["reason"].(string)
			q.Raw, _ = raw["raw"].(string)
			if q.Org != "org_bad" || q.Raw == "" {
				t.Errorf("%s: incomplete quarantine record %.200s", p, line)
			}
			reasons[q.Reason]++
		}
		for reason := range bad {
			if reasons[reason] != 1 {
				t.Errorf("%s: %d records quarantined as %q, want 1 (all: %v)", p, reasons[reason], reason, reasons)
			}
		}
	}
	if !strings.Contains(r.stderr, `"quarantined":8`) {
		t.Errorf("the window log lines do not count 8 quarantined records:\n%s", tailLines(r.stderr, 6))
	}
}
