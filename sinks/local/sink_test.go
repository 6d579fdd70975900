package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

func newSink(t *testing.T, cfg Config) (*Sink, *prometheus.Registry) {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = t.TempDir()
	}
	reg := prometheus.NewRegistry()
	s, err := New(cfg, sinks.Env{Registerer: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinks.Reader) {
		s, _ := newSink(t, Config{})
		return s, s
	})
}

func TestRegistered(t *testing.T) {
	c, err := sinks.New("local")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*Config); !ok {
		t.Fatalf("sinks.New(local) = %T, want *local.Config", c)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      Config
		wantErr string
	}{
		{"minimal", Config{Path: "/data/out"}, ""},
		{"no path", Config{}, "path: required"},
		{"bad mode", Config{Path: "x", DirMode: "0789"}, `dir_mode: "0789"`},
		{"owner cannot enter", Config{Path: "x", DirMode: "0650"}, `dir_mode: "0650"`},
		{"too wide", Config{Path: "x", DirMode: "01777"}, `dir_mode: "01777"`},
		{"bad codec", Config{Path: "x", Options: pqenc.Options{Compression: "lz4"}}, `compression: "lz4"`},
		{"bad rows", Config{Path: "x", Options: pqenc.Options{RowGroupRows: -5}}, "row_group_rows: -5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.in
			c.SetDefaults()
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.QuarantinePath != filepath.Join(c.Path, "_quarantine") || c.DirMode != "0750" ||
					c.Compression != "zstd" || c.RowGroupRows != pqenc.DefaultRowGroupRows {
					t.Fatalf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFilesOnDisk(t *testing.T) {
	root := t.TempDir()
	s, reg := newSink(t, Config{Path: root})
	defer s.Close()
	ctx := context.Background()
	w := sinktest.Window("org_acme", 10)
	ids := sinktest.IDs("evt", 0, 2500)

	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(w, ids))
	defer rec.Release()
	if err := u.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	bad := []event.Quarantined{
		{Org: w.Org, Window: w.Range(), Page: 3, Reason: "no timestamp", Raw: `{"id":"x1"}`},
		{Org: w.Org, Window: w.Range(), Page: 4, Reason: "not an object", Raw: `[1,2]`},
	}
	for _, q := range bad {
		if err := u.Quarantine(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is visible before Commit.
	if m, _ := filepath.Glob(filepath.Join(root, "*", "*", "*", "*.parquet")); len(m) != 0 {
		t.Fatalf("visible before commit: %v", m)
	}
	res, err := u.Commit(ctx)
	if err != nil {
		t.Fatal(err)
	}

	want := filepath.Join(root, "org_id=org_acme", "date=2026-06-01", "hour=10", "events-20260601T1000Z-20260601T1100Z.parquet")
	if res.Location != want {
		t.Fatalf("Location = %q, want %q", res.Location, want)
	}
	st, err := os.Stat(want)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 || st.Size() != res.Bytes {
		t.Fatalf("data file mode %v size %d, want 0640 and %d", st.Mode().Perm(), st.Size(), res.Bytes)
	}
	dst, err := os.Stat(filepath.Dir(want))
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode().Perm() != 0o750 {
		t.Fatalf("directory mode %v, want 0750", dst.Mode().Perm())
	}
	data, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	info, err := sinktest.CheckParquet(data, w)
	if err != nil {
		t.Fatal(err)
	}
	if err := sinktest.SameIDs(info.IDs, ids); err != nil {
		t.Fatal(err)
	}

	qpath := filepath.Join(root, "_quarantine", "org_id=org_acme", "date=2026-06-01", "hour=10", "quarantine-20260601T1000Z-20260601T1100Z.jsonl")
	qst, err := os.Stat(qpath)
	if err != nil {
		t.Fatal(err)
	}
	if qst.Mode().Perm() != 0o600 {
		t.Fatalf("quarantine mode %v, want 0600", qst.Mode().Perm())
	}
	qf, err := os.Open(qpath)
	if err != nil {
		t.Fatal(err)
	}
	defer qf.Close()
	var got []event.Quarantined
	sc := bufio.NewScanner(qf)
	for sc.Scan() {
		var q event.Quarantined
		if err := json.Unmarshal(sc.Bytes(), &q); err != nil {
			t.Fatalf("quarantine line %q: %v", sc.Text(), err)
		}
		got = append(got, q)
	}
	if len(got) != len(bad) || got[0] != bad[0] || got[1] != bad[1] {
		t.Fatalf("quarantine file holds %+v, want %+v", got, bad)
	}

	// No temp files remain anywhere.
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", p)
		}
		return nil
	})

	if got := gathered(t, reg, "vaultsink_sink_bytes_written_total"); got != float64(res.Bytes) {
		t.Fatalf("bytes metric = %v, want %d", got, res.Bytes)
	}
	if got := gathered(t, reg, "vaultsink_sink_commits_total"); got != 1 {
		t.Fatalf("commits metric = %v, want 1", got)
	}

	// A window without quarantined records has no quarantine file.
	w2 := sinktest.Window("org_acme", 11)
	sinktest.WriteWindow(t, s, w2, sinktest.IDs("e", 0, 10), 10)
	if _, err := os.Stat(s.QuarantinePath(w2)); !os.IsNotExist(err) {
		t.Fatalf("quarantine file for a clean window: %v", err)
	}
}

func TestCrashLeftoversCleanedOnOpen(t *testing.T) {
	s, _ := newSink(t, Config{})
	defer s.Close()
	ctx := context.Background()
	w := sinktest.Window("org_acme", 5)
	sinktest.WriteWindow(t, s, w, sinktest.IDs("old", 0, 100), 100)

	// What a kill -9 mid-write leaves: temp files of this window and of another.
	dir := filepath.Dir(s.Path(w))
	mine := filepath.Join(dir, ".events-20260601T0500Z-20260601T0600Z.parquet.tmp-4242-123")
	other := filepath.Join(dir, ".events-20260601T0530Z-20260601T0600Z.parquet.tmp-4242-456")
	qmine := tempPrefix(s.QuarantinePath(w)) + "4242-789"
	for _, p := range []string{mine, other, qmine} {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("PAR1 partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "*.parquet")); len(m) != 1 {
		t.Fatalf("*.parquet glob sees %v, want only the committed file", m)
	}
	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	for p, wantExist := range map[string]bool{mine: false, qmine: false, other: true, s.Path(w): true} {
		if _, err := os.Stat(p); (err == nil) != wantExist {
			t.Errorf("%s: exists=%t, want %t", p, err == nil, wantExist)
		}
	}
}

func TestStat(t *testing.T) {
	s, _ := newSink(t, Config{})
	defer s.Close()
	ctx := context.Background()
	w := sinktest.Window("org_acme", 7)
	if ok, n, err := s.Stat(ctx, w); err != nil || ok || n != 0 {
		t.Fatalf("Stat before write = %t %d %v, want false 0 nil", ok, n, err)
	}
	sinktest.WriteWindow(t, s, w, sinktest.IDs("e", 0, 1234), 500)
	if ok, n, err := s.Stat(ctx, w); err != nil || !ok || n != 1234 {
		t.Fatalf("Stat = %t %d %v, want true 1234 nil", ok, n, err)
	}
	// A corrupt file is an error, not "missing" (backfill must not skip it
	// silently nor overwrite it unnoticed).
	if err := os.WriteFile(s.Path(w), []byte("garbage"), 0o640); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Stat(ctx, w); err == nil {
		t.Fatal("Stat of a corrupt file succeeded")
	}
}

func TestBadWindows(t *testing.T) {
	s, _ := newSink(t, Config{})
	defer s.Close()
	ctx := context.Background()
	good := sinktest.Window("org", 1)
	for name, w := range map[string]event.Window{
		"empty org":  {Org: "", Start: good.Start, End: good.End},
		"dot dot":    {Org: "..", Start: good.Start, End: good.End},
		"slash":      {Org: "a/b", Start: good.Start, End: good.End},
		"end first":  {Org: "org", Start: good.End, End: good.Start},
		"zero width": {Org: "org", Start: good.Start, End: good.Start},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Open(ctx, w)
			if err == nil || !errors.Is(err, sinks.ErrPermanent) {
				t.Fatalf("Open = %v, want a permanent error", err)
			}
		})
	}
}

func TestCloseAbortsOpenUnits(t *testing.T) {
	s, _ := newSink(t, Config{})
	ctx := context.Background()
	w := sinktest.Window("org", 2)
	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	rec := sinktest.Batch(memory.DefaultAllocator, sinktest.Events(w, sinktest.IDs("e", 0, 10)))
	defer rec.Release()
	if err := u.Write(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(tempPrefix(s.Path(w)) + "*"); len(m) != 0 {
		t.Fatalf("temp files after Close: %v", m)
	}
	if _, err := s.Open(ctx, w); err == nil {
		t.Fatal("Open after Close succeeded")
	}
}

func TestRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Config{Path: t.TempDir()}, sinks.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := New(Config{Path: t.TempDir()}, sinks.Env{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sinktest.WriteWindow(t, a, sinktest.Window("o", 1), sinktest.IDs("e", 0, 5), 5)
	sinktest.WriteWindow(t, b, sinktest.Window("o", 1), sinktest.IDs("e", 0, 5), 5)
	if got := gathered(t, reg, "vaultsink_sink_commits_total"); got != 2 {
		t.Fatalf("shared commits counter = %v, want 2", got)
	}
}

// gathered returns the value of the sink="local" series of a counter.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelValue(m, "sink") == "local" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{sink=\"local\"} series", name)
	return 0
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
