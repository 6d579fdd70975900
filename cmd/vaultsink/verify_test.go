package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/bigquery/bqtest"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
	"github.com/vaultsink/vaultsink/source"
	"github.com/vaultsink/vaultsink/source/vaultsim"
)

// verifyTree is a simulator (optionally behind a handler that reshapes its
// answers) and a vaultsink config with a local sink, after one sync.
type verifyTree struct {
	*e2e
	org string
}

type verifyOpts struct {
	sim      vaultsim.Config // Seed, Orgs, From, To are set here
	pageSize int             // default 250
	hours    int             // default 6
	wrap     func(http.Handler) http.Handler
}

func newVerifyTree(t *testing.T, o verifyOpts) *verifyTree {
	t.Helper()
	if o.pageSize == 0 {
		o.pageSize = 250
	}
	if o.hours == 0 {
		o.hours = 6
	}
	if o.sim.Rate == 0 {
		o.sim.Rate = 200
	}
	// to is the checkpoint the sync reaches: the end of the last window
	// closed by settle (5m). Clear of the moment the next one closes, so
	// that the sync and the verify agree on it.
	const settle = 5 * time.Minute
	if left := time.Until(time.Now().Add(-settle).Truncate(time.Hour).Add(time.Hour + settle)); left < time.Minute {
		time.Sleep(left + time.Second)
	}
	to := time.Now().UTC().Add(-settle).Truncate(time.Hour)
	from := to.Add(-time.Duration(o.hours) * time.Hour)
	o.sim.Seed, o.sim.Orgs, o.sim.From, o.sim.To = 17, 1, from, to
	s, err := vaultsim.New(o.sim)
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()
	if o.wrap != nil {
		h = o.wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	cred := s.Creds()[0]
	tok := filepath.Join(dir, cred.OrgID+".token")
	if err := os.WriteFile(tok, []byte(cred.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`source:
  base_url: %s/api
  page_size: %d
  retry:
    initial_backoff: 5ms
    max_backoff: 50ms
orgs:
  - id: %s
    token_file: %s
start: %s
window: 1h
settle: 5m
server:
  listen: ""
log:
  level: warn
  format: json
sink:
  type: local
  path: %s
checkpoint:
  type: file
  path: %s
`, srv.URL, o.pageSize, cred.OrgID, tok, from.Format(time.RFC3339), filepath.Join(dir, "out"), filepath.Join(dir, "state"))
	path := filepath.Join(dir, "vaultsink.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, sim: &vaultsim.Running{Server: s, URL: srv.URL + "/api"}, dir: dir, cfg: path, from: from, to: to}
	e.mustRun("sync")
	return &verifyTree{e2e: e, org: cred.OrgID}
}

// hour is the history's h-th window.
func (v *verifyTree) hour(h int) event.Window {
	s := v.from.Add(time.Duration(h) * time.Hour)
	return event.Window{Org: v.org, Start: s, End: s.Add(time.Hour)}
}

func (v *verifyTree) unitPath(w event.Window) string {
	return filepath.Join(v.outDir(), filepath.FromSlash(sinks.ObjectKey(w)))
}

// verify runs `vaultsink verify` over the history (and extra hours past
// it) and returns its output and exit status.
func (v *verifyTree) verify(extra time.Duration, args ...string) (string, int) {
	v.t.Helper()
	out, errs, err := v.run(context.Background(), append([]string{"verify", "--from", v.from.Format(time.RFC3339), "--to", v.to.Add(extra).Format(time.RFC3339)}, args...)...)
	code := exitOK
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case err != nil:
		v.t.Fatalf("verify: %v\n%s\n%s", err, out, errs)
	}
	v.t.Logf("vaultsink verify (exit %d):\n%s", code, out)
	return out, code
}

// rewrite replaces the unit at path by one whose footer records meta, with
// the rows of the units at srcs (in order) except the ids in drop, and
// then the rows of add.
func rewrite(t *testing.T, path string, meta event.Window, srcs []string, drop []string, add []arrow.RecordBatch) {
	t.Helper()
	tmp := path + ".new"
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var opts pqenc.Options
	opts.SetDefaults()
	pw, err := pqenc.NewWriter(f, pqenc.Meta{Window: meta, Version: "test"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range srcs {
		in, err := os.Open(src)
		if err != nil {
			t.Fatal(err)
		}
		err = pqread.Rows(context.Background(), in, func(rec arrow.RecordBatch) error {
			ids := rec.Column(event.ColEventID).(*array.String)
			from := 0
			for i := 0; i <= ids.Len(); i++ {
				if i < ids.Len() && !slices.Contains(drop, ids.Value(i)) {
					continue
				}
				if i > from {
					part := rec.NewSlice(int64(from), int64(i))
					err := pw.Write(part)
					part.Release()
					if err != nil {
						return err
					}
				}
				from = i + 1
			}
			return nil
		})
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, rec := range add {
		if err := pw.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// rowOf builds a one-row batch holding the simulator's event e.
func rowOf(e vaultsim.Event) arrow.RecordBatch {
	return sinktest.Batch(memory.DefaultAllocator, []sinktest.Event{{ID: e.ID, Org: e.OrgID, Time: e.Timestamp, Action: e.Action}})
}

func expectLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(p).MatchString(out) {
			t.Errorf("verify output lacks %q:\n%s", p, out)
		}
	}
}

// TestVerifyIntact: after a normal sync verify finds nothing, cross-checks
// the paging (auto pagination), and counts the windows past the
// checkpoint as not synced yet, not as differences.
func TestVerifyIntact(t *testing.T) {
	v := newVerifyTree(t, verifyOpts{})
	out, code := v.verify(3*time.Hour, "-v")
	if code != exitOK {
		t.Fatalf("verify of an intact tree: exit %d", code)
	}
	expectLines(t, out,
		`(?m)^verify: 6 windows, (\d+) events in the API, (\d+) rows in the sink: 0 missing, 0 extra, 0 duplicated; 0 windows differ \(0 events only in quarantine, 0 rows outside their unit, 0 windows with disagreeing API paging\); 3 windows not synced yet; 0 findings$`,
		`(?m)^ok .* units=1 missing=0`,
		`(?m)^- .*: not synced yet \(past the checkpoint`)
	if strings.Contains(out, "DIFFERS") || strings.Contains(out, "FINDING") {
		t.Fatalf("verify of an intact tree reports a difference:\n%s", out)
	}
	m := regexp.MustCompile(`(\d+) events in the API, (\d+) rows in the sink`).FindStringSubmatch(out)
	want := len(v.sim.EventIDs(v.org, v.from, v.to))
	if m == nil || m[1] != strconv.Itoa(want) || m[2] != m[1] {
		t.Fatalf("verify counted %v, the truth has %d events", m, want)
	}
	// Without -v nothing but the summary.
	out, code = v.verify(0)
	if code != exitOK || strings.Count(out, "\n") != 1 {
		t.Fatalf("verify without -v of an intact tree (exit %d) prints more than the summary:\n%s", code, out)
	}
}

// TestVerifyDamage: verify reports a difference whenever the tree is
// damaged on purpose, each on a fresh tree.
func TestVerifyDamage(t *testing.T) {
	t.Run("another window size over one window", func(t *testing.T) {
		v := newVerifyTree(t, verifyOpts{})
		two := event.Window{Org: v.org, Start: v.hour(2).Start, End: v.hour(4).Start}
		rewrite(t, v.unitPath(two), two, []string{v.unitPath(v.hour(2)), v.unitPath(v.hour(3))}, nil, nil)
		out, code := v.verify(0)
		n2, n3 := len(v.sim.EventIDs(v.org, v.hour(2).Start, v.hour(2).End)), len(v.sim.EventIDs(v.org, v.hour(3).Start, v.hour(3).End))
		expectLines(t, out,
			fmt.Sprintf(`(?m)^DIFFERS +%s .* sink=%d units=2 missing=0 extra=0 duplicated=%d `, regexp.QuoteMeta(v.hour(2).String()), 2*n2, n2),
			fmt.Sprintf(`(?m)^DIFFERS +%s .* sink=%d units=2 missing=0 extra=0 duplicated=%d `, regexp.QuoteMeta(v.hour(3).String()), 2*n3, n3),
			fmt.Sprintf(`(?m)^ +duplicated: first 5 of %d: evt_`, n2),
			`(?m)^FINDING .* overlap: .*events-\d{8}T\d{4}Z-\d{8}T\d{4}Z\.parquet: its range .* overlaps other units of the org \(a Hive reader sees their rows twice\): 2: `,
			`(?m)^FINDING .* size: .*: holds a 2h window .* the org's window is 1h`,
			`; 2 windows differ `)
		if code != exitDiffers {
			t.Fatalf("exit %d, want %d", code, exitDiffers)
		}
	})

	t.Run("a row deleted", func(t *testing.T) {
		v := newVerifyTree(t, verifyOpts{})
		w := v.hour(1)
		victim := v.sim.EventIDs(v.org, w.Start, w.End)[7]
		rewrite(t, v.unitPath(w), w, []string{v.unitPath(w)}, []string{victim}, nil)
		out, code := v.verify(0)
		expectLines(t, out,
			fmt.Sprintf(`(?m)^DIFFERS +%s .* missing=1 extra=0 duplicated=0 `, regexp.QuoteMeta(w.String())),
			fmt.Sprintf(`(?m)^ +missing: 1: %s$`, victim),
			`: 1 missing, 0 extra, 0 duplicated`)
		if code != exitDiffers {
			t.Fatalf("exit %d, want %d", code, exitDiffers)
		}
	})

	t.Run("a unit moved under another window's key", func(t *testing.T) {
		v := newVerifyTree(t, verifyOpts{})
		if err := os.Rename(v.unitPath(v.hour(1)), v.unitPath(v.hour(2))); err != nil {
			t.Fatal(err)
		}
		out, code := v.verify(0)
		n2 := len(v.sim.EventIDs(v.org, v.hour(2).Start, v.hour(2).End))
		expectLines(t, out,
			// the moved rows are still found, by their timestamps
			fmt.Sprintf(`(?m)^DIFFERS +%s .* sink=0 units=0 missing=%d `, regexp.QuoteMeta(v.hour(2).String()), n2),
			fmt.Sprintf(`(?m)^FINDING .* key-mismatch: %s: its key names window %s, its footer %s`,
				regexp.QuoteMeta(sinks.ObjectKey(v.hour(2))), regexp.QuoteMeta(v.hour(2).Range()), regexp.QuoteMeta(v.hour(1).Range())),
			`; 1 window differs `)
		if strings.Contains(out, v.hour(1).String()) {
			t.Errorf("the moved unit's own window is reported:\n%s", out)
		}
		if code != exitDiffers {
			t.Fatalf("exit %d, want %d", code, exitDiffers)
		}
	})

	t.Run("a row outside its unit's range", func(t *testing.T) {
		v := newVerifyTree(t, verifyOpts{})
		w, next := v.hour(3), v.hour(4)
		stray := v.sim.Events(v.org, next.Start, next.End)[0] // one of the next window's events
		rec := rowOf(stray)
		defer rec.Release()
		rewrite(t, v.unitPath(w), w, []string{v.unitPath(w)}, nil, []arrow.RecordBatch{rec})
		out, code := v.verify(0)
		expectLines(t, out,
			fmt.Sprintf(`(?m)^DIFFERS +%s .* units=2 missing=0 extra=0 duplicated=1 quarantine-only=0 outside=1$`, regexp.QuoteMeta(next.String())),
			fmt.Sprintf(`(?m)^ +outside their unit's range: 1: %s$`, stray.ID),
			fmt.Sprintf(`(?m)^FINDING .* outside: %s: rows outside the range %s it records: 1: %s at `,
				regexp.QuoteMeta(sinks.ObjectKey(w)), regexp.QuoteMeta(w.Range()), stray.ID))
		if code != exitDiffers {
			t.Fatalf("exit %d, want %d", code, exitDiffers)
		}
	})

	t.Run("a boundary event only in quarantine", func(t *testing.T) {
		v := newVerifyTree(t, verifyOpts{})
		w, before := v.hour(2), v.hour(1)
		ev := v.sim.Events(v.org, w.Start, w.End)[0] // the window's first event: nearest the boundary
		rewrite(t, v.unitPath(w), w, []string{v.unitPath(w)}, []string{ev.ID}, nil)
		q := filepath.Join(v.outDir(), "_quarantine", filepath.FromSlash(sinks.QuarantineKey(before)))
		if err := os.MkdirAll(filepath.Dir(q), 0o750); err != nil {
			t.Fatal(err)
		}
		line, err := json.Marshal(event.Quarantined{Org: v.org, Window: before.Range(), Page: 3, Reason: source.ReasonOutsideWindow, Raw: string(v.sim.AppendEvent(nil, ev))})
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(q, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out, code := v.verify(0)
		expectLines(t, out,
			fmt.Sprintf(`(?m)^DIFFERS +%s .* missing=0 extra=0 duplicated=0 quarantine-only=1 outside=0$`, regexp.QuoteMeta(w.String())),
			fmt.Sprintf(`(?m)^ +only in quarantine \(a boundary event the sync set aside\): 1: %s$`, ev.ID),
			`\(1 event only in quarantine,`)
		if code != exitDiffers {
			t.Fatalf("exit %d, want %d", code, exitDiffers)
		}
	})
}

// TestVerifyPageCap: a page-number API that silently caps per_page at 100
// and sends no total_pages, walked with page_size 1000. Whatever the sync
// made of it, verify must agree with the truth: exit 0 only when the sink
// holds every event, and otherwise report the windows short, with the
// paging cross-check naming the truncation.
func TestVerifyPageCap(t *testing.T) {
	v := newVerifyTree(t, verifyOpts{pageSize: 1000, sim: vaultsim.Config{Profile: vaultsim.ProfilePage, PageCap: 100, NoTotals: true, Rate: 500}})
	held := idsByOrg(t, duck(t), v.outDir())[v.org]
	truth := v.sim.EventIDs(v.org, v.from, v.to)
	out, code := v.verify(0, "-v")
	expectLines(t, out, `(?m)^ok|DIFFERS`)
	if len(held) == len(truth) {
		if code != exitOK {
			t.Fatalf("the sink holds every event, verify exits %d", code)
		}
		return
	}
	t.Logf("the sync archived %d of %d events", len(held), len(truth))
	expectLines(t, out, `(?m)^ +API paging disagrees: `, fmt.Sprintf(`: %d missing,`, len(truth)-len(held)))
	if code != exitDiffers {
		t.Fatalf("the sink lacks %d events, verify exits %d", len(truth)-len(held), code)
	}
}

// TestVerifyTruncatingAPI: an API that serves at most maxOffset events of
// any query (its later pages come back empty), as search-backed APIs do.
// The sync archives only the first events of each window and verify's
// walk of a whole window is truncated the same way: only the walks of its
// quarters, each under the limit, show what is missing.
func TestVerifyTruncatingAPI(t *testing.T) {
	const perPage, maxOffset = 100, 300
	wrap := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p, _ := strconv.Atoi(r.URL.Query().Get("page")); (p-1)*perPage >= maxOffset {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, `{"events":[],"page":%d}`, p)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	v := newVerifyTree(t, verifyOpts{pageSize: 1000, wrap: wrap,
		sim: vaultsim.Config{Profile: vaultsim.ProfilePage, PageCap: perPage, NoTotals: true, Rate: 500}})
	held := idsByOrg(t, duck(t), v.outDir())[v.org]
	truth := v.sim.EventIDs(v.org, v.from, v.to)
	if len(held) >= len(truth) {
		t.Fatalf("the sync archived %d of %d events: the API did not truncate, the test proves nothing", len(held), len(truth))
	}
	out, code := v.verify(0)
	if code != exitDiffers {
		t.Fatalf("the sink lacks %d events, verify exits %d", len(truth)-len(held), code)
	}
	expectLines(t, out,
		`(?m)^DIFFERS .* api=\d+ sink=300 units=1 missing=\d+ `,
		`(?m)^ +API paging disagrees: the whole window's walk returned 300 ids, its 4 quarters' walks \d+ \(\d+ only in the quarters, 0 only in the whole walk\)`)
	// Every event the quarters show and the sink lacks is missing (a
	// quarter over the limit would hide some: at most what the sink lacks).
	m := regexp.MustCompile(`: (\d+) missing,`).FindStringSubmatch(out)
	if n, _ := strconv.Atoi(m[1]); m == nil || n == 0 || n > len(truth)-len(held) {
		t.Fatalf("verify reports %v missing; the sink lacks %d", m, len(truth)-len(held))
	}
}

// TestVerifyBigQuery: verify reads a BigQuery table a window at a time and
// reports a row deleted, a row duplicated and a boundary event that sits
// only in <table>_quarantine.
func TestVerifyBigQuery(t *testing.T) {
	srv := bqtest.Start(t, "vaultsink-e2e")
	e := newE2E(t, e2eOpts{rate: 100, hours: 6, sink: bqYAML(t, srv)})
	e.mustRun("sync")
	ctx := context.Background()
	org := "org_1"
	hour := func(h int) event.Window {
		s := e.from.Add(time.Duration(h) * time.Hour)
		return event.Window{Org: org, Start: s, End: s.Add(time.Hour)}
	}
	ids := func(w event.Window) []string { return e.sim.EventIDs(org, w.Start, w.End) }
	deleted, doubled := ids(hour(1))[3], ids(hour(3))[5]
	boundary := e.sim.Events(org, hour(4).Start, hour(4).End)[0]
	for _, q := range []string{
		`DELETE FROM "audit"."vaultterm_events" WHERE event_id = '` + deleted + `'`,
		`INSERT INTO "audit"."vaultterm_events" SELECT * FROM "audit"."vaultterm_events" WHERE event_id = '` + doubled + `'`,
		`DELETE FROM "audit"."vaultterm_events" WHERE event_id = '` + boundary.ID + `'`,
	} {
		if err := srv.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	err := srv.Exec(ctx, `INSERT INTO "audit"."vaultterm_events_quarantine" (org_id, window_start, window_end, page, reason, raw) VALUES (?, ?, ?, 2, ?, ?)`,
		org, hour(3).Start, hour(3).End, source.ReasonOutsideWindow, string(e.sim.AppendEvent(nil, boundary)))
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run(ctx, "verify", "--org", org, "--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339))
	t.Logf("vaultsink verify:\n%s", out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitDiffers {
		t.Fatalf("verify: want exit %d, got %v", exitDiffers, err)
	}
	expectLines(t, out,
		fmt.Sprintf(`(?m)^DIFFERS +%s .* missing=1 extra=0 duplicated=0 quarantine-only=0 `, regexp.QuoteMeta(hour(1).String())),
		fmt.Sprintf(`(?m)^ +missing: 1: %s$`, deleted),
		fmt.Sprintf(`(?m)^DIFFERS +%s .* missing=0 extra=0 duplicated=1 `, regexp.QuoteMeta(hour(3).String())),
		fmt.Sprintf(`(?m)^ +duplicated: 1: %s$`, doubled),
		fmt.Sprintf(`(?m)^DIFFERS +%s .* missing=0 extra=0 duplicated=0 quarantine-only=1 `, regexp.QuoteMeta(hour(4).String())),
		`; 3 windows differ \(1 event only in quarantine, 0 rows outside their unit, 0 windows with disagreeing API paging\); 0 windows not synced yet; 0 findings`)
}

// TestVerifyRedelivered: an API that delivers some events a second time,
// 20 minutes later (often in the next window). The archive keeps each id
// once; verify accepts an id archived in the window next to the one the
// API returns it in, and agrees with what DuckDB reads.
func TestVerifyRedelivered(t *testing.T) {
	faults, err := vaultsim.ParseFaults("redeliver=0.2")
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifyTree(t, verifyOpts{sim: vaultsim.Config{Faults: faults}})
	held := idsByOrg(t, duck(t), v.outDir())[v.org]
	truth := v.sim.EventIDs(v.org, v.from, v.to)
	out, code := v.verify(0, "-v")
	slices.Sort(held)
	if !slices.Equal(held, truth) {
		t.Logf("the archive holds %d rows for %d ids", len(held), len(truth))
		if code != exitDiffers {
			t.Fatalf("the archive differs from the truth, verify exits %d", code)
		}
		return
	}
	if code != exitOK {
		t.Fatalf("the archive holds every id once, verify exits %d", code)
	}
	expectLines(t, out, `(?m)^ +archived once in an adjacent window \(not a difference\): `, `ids the API returns in a window are archived once in an adjacent one`,
		fmt.Sprintf(`, %d events in the API, %d rows in the sink: 0 missing`, len(truth), len(truth)))
}

// TestVerifyS3: verify lists an S3 sink's objects (any key), reads their
// footers with ranged GETs, and reports an object copied under another
// window's key.
func TestVerifyS3(t *testing.T) {
	srv := s3test.GoFakeS3(t)
	e := newE2E(t, e2eOpts{rate: 100, hours: 6, sink: s3YAML(srv, "s3", "  prefix: vaultterm/events\n")})
	e.mustRun("sync")
	org := "org_2"
	args := []string{"verify", "--org", org, "--from", e.from.Format(time.RFC3339), "--to", e.to.Format(time.RFC3339)}
	if out := e.mustRun(args...); !strings.Contains(out, ": 0 missing, 0 extra, 0 duplicated; 0 windows differ") {
		t.Fatalf("verify of an intact bucket:\n%s", out)
	}
	hour := func(h int) event.Window {
		s := e.from.Add(time.Duration(h) * time.Hour)
		return event.Window{Org: org, Start: s, End: s.Add(time.Hour)}
	}
	ctx := context.Background()
	cl, err := s3client.NewClient(ctx, srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	src, dst := "vaultterm/events/"+sinks.ObjectKey(hour(2)), "vaultterm/events/"+sinks.ObjectKey(hour(3))
	obj, err := cl.GetObject(ctx, &s3.GetObjectInput{Bucket: &srv.Bucket, Key: &src})
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.PutObject(ctx, &s3.PutObjectInput{Bucket: &srv.Bucket, Key: &dst, Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	out, _, err := e.run(ctx, args...)
	t.Logf("vaultsink verify:\n%s", out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitDiffers {
		t.Fatalf("verify: want exit %d, got %v", exitDiffers, err)
	}
	n2, n3 := len(e.sim.EventIDs(org, hour(2).Start, hour(2).End)), len(e.sim.EventIDs(org, hour(3).Start, hour(3).End))
	expectLines(t, out,
		fmt.Sprintf(`(?m)^DIFFERS +%s .* sink=%d units=2 missing=0 extra=0 duplicated=%d `, regexp.QuoteMeta(hour(2).String()), 2*n2, n2),
		fmt.Sprintf(`(?m)^DIFFERS +%s .* sink=0 units=0 missing=%d `, regexp.QuoteMeta(hour(3).String()), n3),
		fmt.Sprintf(`(?m)^FINDING  %s key-mismatch: %s: its key names window %s, its footer %s`, org,
			regexp.QuoteMeta(sinks.ObjectKey(hour(3))), regexp.QuoteMeta(hour(3).Range()), regexp.QuoteMeta(hour(2).Range())),
		fmt.Sprintf(`(?m)^FINDING  %s overlap: `, org))
}
