package s3_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/sinks"
	s3sink "github.com/vaultsink/vaultsink/sinks/s3"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
	"github.com/vaultsink/vaultsink/sinks/sinktest"
)

var window = event.Window{
	Org:   "acme",
	Start: time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC),
	End:   time.Date(2026, 6, 1, 11, 0, 0, 0, time.UTC),
}

func newSink(t testing.TB, srv *s3test.Server, mutate func(*s3sink.Config)) *s3sink.Sink {
	t.Helper()
	cfg := s3sink.Config{ClientConfig: srv.ClientConfig(), Bucket: srv.Bucket, Prefix: "vaultterm/events"}
	if mutate != nil {
		mutate(&cfg)
	}
	s, err := s3sink.New(context.Background(), cfg, sinks.Env{Registerer: prometheus.NewRegistry(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// multipart makes a window of multipartEvents events span two parts: no
// compression, small row groups, the minimum part size.
func multipart(c *s3sink.Config) {
	c.PartSize = s3sink.MinPartSize
	c.Compression = "none"
	c.RowGroupRows = 2000
}

// multipartEvents synthetic events make ~7 MB of uncompressed Parquet
// (~240 B a row with dictionaries): more than one 5 MiB part.
const multipartEvents = 30000

// batches of synthetic events are built once per (window, ids) and shared:
// under -race, building them costs more than uploading them.
var (
	cacheMu sync.Mutex
	cache   = map[string][]arrow.RecordBatch{}
)

func batches(w event.Window, ids []string) []arrow.RecordBatch {
	if len(ids) == 0 {
		return nil
	}
	k := fmt.Sprintf("%v|%s|%d", w, ids[0], len(ids))
	cacheMu.Lock()
	defer cacheMu.Unlock()
	if recs, ok := cache[k]; ok {
		return recs
	}
	var recs []arrow.RecordBatch
	for i := 0; i < len(ids); i += 1000 {
		recs = append(recs, sinktest.Batch(memory.DefaultAllocator, sinktest.Events(w, ids[i:min(i+1000, len(ids))])))
	}
	cache[k] = recs
	return recs
}

// writeWindow writes ids into w in batches of 1000 and commits.
func writeWindow(t testing.TB, s sinks.Sink, w event.Window, ids []string, quarantined int) (sinks.Result, error) {
	t.Helper()
	ctx := context.Background()
	u, err := s.Open(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	defer u.Abort(ctx)
	for _, rec := range batches(w, ids) {
		if err := u.Write(ctx, rec); err != nil {
			return sinks.Result{}, err
		}
	}
	for i := range quarantined {
		if err := u.Quarantine(ctx, event.Quarantined{Org: w.Org, Window: w.Range(), Page: i, Reason: "no timestamp", Raw: `{"id":"q"}`}); err != nil {
			t.Fatal(err)
		}
	}
	return u.Commit(ctx)
}

func getObject(t testing.TB, client *s3.Client, bucket, key string) []byte {
	t.Helper()
	out, err := client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &bucket, Key: &key})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkObject reads w's object back with an independent Parquet reader and
// through the sink's Reader and Stat, and compares with want.
func checkObject(t testing.TB, s *s3sink.Sink, srv *s3test.Server, w event.Window, want []string) {
	t.Helper()
	data := getObject(t, s.Client(), srv.Bucket, s.Key(w))
	info, err := sinktest.CheckParquet(data, w)
	if err != nil {
		t.Fatalf("check parquet: %v", err)
	}
	got := slices.Sorted(slices.Values(info.IDs))
	wantSorted := slices.Sorted(slices.Values(want))
	if !slices.Equal(got, wantSorted) {
		t.Fatalf("object holds %d ids, want %d (first got %v)", len(got), len(wantSorted), got[:min(3, len(got))])
	}
	var viaReader []string
	if err := s.EventIDs(context.Background(), w, func(id string) error { viaReader = append(viaReader, id); return nil }); err != nil {
		t.Fatalf("EventIDs: %v", err)
	}
	slices.Sort(viaReader)
	if !slices.Equal(viaReader, wantSorted) {
		t.Fatalf("EventIDs returned %d ids, want %d", len(viaReader), len(wantSorted))
	}
	exists, n, err := s.Stat(context.Background(), w)
	if err != nil || !exists || n != int64(len(want)) {
		t.Fatalf("Stat = %v, %d, %v; want true, %d, nil", exists, n, err, len(want))
	}
}

func noIncompleteUploads(t testing.TB, s *s3sink.Sink) {
	t.Helper()
	ups, err := s.IncompleteUploads(context.Background())
	if err != nil {
		t.Fatalf("list multipart uploads: %v", err)
	}
	if len(ups) != 0 {
		t.Fatalf("%d incomplete multipart uploads left, first %s", len(ups), ups[0].Key)
	}
}

func servers() map[string]func(testing.TB) *s3test.Server {
	return map[string]func(testing.TB) *s3test.Server{
		"versitygw": s3test.Versity,
		"gofakes3":  s3test.GoFakeS3,
	}
}

func TestSinkRoundTrip(t *testing.T) {
	for name, start := range servers() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := start(t)
			tests := []struct {
				name   string
				n      int
				mutate func(*s3sink.Config)
				parts  bool
			}{
				{"small window is one PutObject", 1500, nil, false},
				{"large window is a multipart upload", multipartEvents, multipart, true},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					s := newSink(t, srv, func(c *s3sink.Config) {
						if tc.mutate != nil {
							tc.mutate(c)
						}
						c.Prefix = strings.ReplaceAll(tc.name, " ", "-") + "/events"
					})
					w := window
					ids := sinktest.IDs("ev", 0, tc.n)
					res, err := writeWindow(t, s, w, ids, 0)
					if err != nil {
						t.Fatal(err)
					}
					if res.Events != int64(tc.n) || res.Bytes == 0 || res.Location != "s3://"+srv.Bucket+"/"+s.Key(w) {
						t.Fatalf("result %+v", res)
					}
					if tc.parts && res.Bytes <= s3sink.MinPartSize {
						t.Fatalf("object of %d bytes does not span several parts; the test does not test multipart", res.Bytes)
					}
					checkObject(t, s, srv, w, ids)
					noIncompleteUploads(t, s)
				})
			}
		})
	}
}

func TestSinkReplaceEmptyAbortQuarantine(t *testing.T) {
	for name, start := range servers() {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			s := newSink(t, srv, multipart)
			ctx := context.Background()

			first := sinktest.IDs("a", 0, multipartEvents)
			if _, err := writeWindow(t, s, window, first, 0); err != nil {
				t.Fatal(err)
			}
			// A rerun with a superset adds the new rows to the object, never
			// a second object.
			second := sinktest.IDs("a", 0, multipartEvents+1000)
			if _, err := writeWindow(t, s, window, second, 2); err != nil {
				t.Fatal(err)
			}
			checkObject(t, s, srv, window, second)

			// An empty rerun keeps the object as it is; its quarantine
			// replaces the window's (the second run's two records).
			res, err := writeWindow(t, s, window, nil, 2)
			if err != nil || res.Events != int64(len(second)) || res.New != 0 || res.Bytes != 0 || res.Vanished != int64(len(second)) {
				t.Fatalf("empty commit = %+v, %v", res, err)
			}
			checkObject(t, s, srv, window, second)

			// An aborted multipart unit leaves nothing: not the object, not the upload.
			u, err := s.Open(ctx, window)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range batches(window, sinktest.IDs("a", 0, multipartEvents)) {
				if err := u.Write(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			if err := u.Abort(ctx); err != nil {
				t.Fatal(err)
			}
			checkObject(t, s, srv, window, second)
			noIncompleteUploads(t, s)

			// Only the data object lies under the table prefix; quarantine is a sibling.
			keys := listKeys(t, s.Client(), srv.Bucket, "")
			want := []string{s.QuarantineKey(window), s.Key(window)}
			slices.Sort(want)
			if !slices.Equal(keys, want) {
				t.Fatalf("bucket holds %v, want %v", keys, want)
			}
			if !strings.HasPrefix(s.QuarantineKey(window), "vaultterm/_quarantine/") {
				t.Fatalf("quarantine key %s is not under the sibling prefix", s.QuarantineKey(window))
			}
			q := getObject(t, s.Client(), srv.Bucket, s.QuarantineKey(window))
			sc := bufio.NewScanner(bytes.NewReader(q))
			lines := 0
			for sc.Scan() {
				var rec event.Quarantined
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Org != window.Org || rec.Reason == "" {
					t.Fatalf("quarantine line %q: %v", sc.Text(), err)
				}
				lines++
			}
			if lines != 2 {
				t.Fatalf("quarantine holds %d lines, want 2", lines)
			}
		})
	}
}

func listKeys(t testing.TB, client *s3.Client, bucket, prefix string) []string {
	t.Helper()
	out, err := client.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, *o.Key)
	}
	slices.Sort(keys)
	return keys
}

func TestSinkFaults(t *testing.T) {
	srv := s3test.Versity(t)
	ids := sinktest.IDs("f", 0, multipartEvents)
	tests := []struct {
		name  string
		n     int
		rules []s3test.Rule
	}{
		{"UploadPart 500", multipartEvents, []s3test.Rule{{Op: s3test.OpUploadPart, Fault: s3test.Fault500, Skip: 1, Times: 2}}},
		{"UploadPart SlowDown", multipartEvents, []s3test.Rule{{Op: s3test.OpUploadPart, Fault: s3test.FaultSlowDown, Times: 3}}},
		{"UploadPart connection cut", multipartEvents, []s3test.Rule{{Op: s3test.OpUploadPart, Fault: s3test.FaultCutRequest, Skip: 1, Times: 1}}},
		{"UploadPart response lost", multipartEvents, []s3test.Rule{{Op: s3test.OpUploadPart, Fault: s3test.FaultCutResponse, Times: 1}}},
		{"CreateMultipartUpload SlowDown", multipartEvents, []s3test.Rule{{Op: s3test.OpCreateMultipartUpload, Fault: s3test.FaultSlowDown, Times: 2}}},
		{"CompleteMultipartUpload 500", multipartEvents, []s3test.Rule{{Op: s3test.OpCompleteMultipartUpload, Fault: s3test.Fault500, Times: 2}}},
		{"CompleteMultipartUpload connection cut", multipartEvents, []s3test.Rule{{Op: s3test.OpCompleteMultipartUpload, Fault: s3test.FaultCutRequest, Times: 1}}},
		{"CompleteMultipartUpload response lost", multipartEvents, []s3test.Rule{{Op: s3test.OpCompleteMultipartUpload, Fault: s3test.FaultCutResponse, Times: 1}}},
		{"PutObject SlowDown and cut", 1500, []s3test.Rule{
			{Op: s3test.OpPutObject, Fault: s3test.FaultSlowDown, Times: 1},
			{Op: s3test.OpPutObject, Fault: s3test.FaultCutRequest, Times: 1},
			{Op: s3test.OpPutObject, Fault: s3test.FaultCutResponse, Times: 1},
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy := s3test.NewFaultProxy(t, srv.Endpoint)
			// Each case has its own table prefix, so all share one window's batches.
			s := newSink(t, srv.WithEndpoint(proxy.URL), func(c *s3sink.Config) {
				multipart(c)
				c.Prefix = fmt.Sprintf("case%d/events", i)
			})
			w := window
			proxy.Add(tc.rules...)
			ids := ids[:tc.n]
			res, err := writeWindow(t, s, w, ids, 0)
			if err != nil {
				t.Fatalf("commit through faults: %v", err)
			}
			if res.Events != int64(tc.n) {
				t.Fatalf("committed %d events, want %d", res.Events, tc.n)
			}
			for _, r := range tc.rules {
				if proxy.Injected(r.Op) == 0 {
					t.Fatalf("no %s fault was injected: the test does not test it", r.Op)
				}
			}
			checkObject(t, s, srv, w, ids)
			noIncompleteUploads(t, s)
		})
	}
}

func TestSinkFaultsExhaustRetries(t *testing.T) {
	srv := s3test.Versity(t)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	s := newSink(t, srv.WithEndpoint(proxy.URL), multipart)
	proxy.Add(s3test.Rule{Op: s3test.OpUploadPart, Fault: s3test.Fault500, Skip: 1, Times: 1000})
	_, err := writeWindow(t, s, window, sinktest.IDs("f", 0, multipartEvents), 0)
	if err == nil {
		t.Fatal("commit succeeded although every UploadPart after the first failed")
	}
	if errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("a 500 is not permanent: %v", err)
	}
	for _, part := range []string{srv.Bucket, window.Org, window.Range(), s.Key(window)} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("error %q does not name %q", err, part)
		}
	}
	// writeWindow's deferred Abort ran: the upload is gone, no object appeared.
	noIncompleteUploads(t, s)
	if exists, _, err := s.Stat(context.Background(), window); err != nil || exists {
		t.Fatalf("Stat after failed unit = %v, %v", exists, err)
	}
}

func TestSinkAccessDenied(t *testing.T) {
	srv := s3test.Versity(t)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	bad := srv.WithEndpoint(proxy.URL)
	bad.SecretKey = "wrong-secret"
	s := newSink(t, bad, nil)
	// Open reads what the window's object holds: the first call refused.
	_, err := s.Open(context.Background(), window)
	if !errors.Is(err, sinks.ErrPermanent) {
		t.Fatalf("err = %v, want sinks.ErrPermanent", err)
	}
	for _, part := range []string{"s3:GetObject", srv.Bucket, window.Org} {
		if !strings.Contains(err.Error(), part) {
			t.Fatalf("error %q does not name %q", err, part)
		}
	}
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatal("error leaks the secret key")
	}
	if n := proxy.Seen(s3test.OpGetObject); n != 1 {
		t.Fatalf("GetObject sent %d times; access denied must not be retried", n)
	}
}

func TestConfig(t *testing.T) {
	valid := func() s3sink.Config {
		return s3sink.Config{Bucket: "b", Prefix: "vaultterm/events"}
	}
	tests := []struct {
		name    string
		mutate  func(*s3sink.Config)
		wantErr string
	}{
		{"defaults", func(*s3sink.Config) {}, ""},
		{"no bucket", func(c *s3sink.Config) { c.Bucket = "" }, "bucket"},
		{"no prefix", func(c *s3sink.Config) { c.Prefix = "" }, "prefix"},
		{"quarantine under prefix", func(c *s3sink.Config) { c.QuarantinePrefix = "vaultterm/events/q" }, "quarantine_prefix"},
		{"prefix under quarantine", func(c *s3sink.Config) { c.QuarantinePrefix = "vaultterm" }, "quarantine_prefix"},
		{"part too small", func(c *s3sink.Config) { c.PartSize = 1 << 20 }, "part_size"},
		{"bad checksums", func(c *s3sink.Config) { c.Checksums = "always" }, "checksums"},
		{"bad sse", func(c *s3sink.Config) { c.SSE = "aes" }, "sse"},
		{"kms key without kms", func(c *s3sink.Config) { c.SSEKMSKeyID = "k" }, "sse_kms_key_id"},
		{"key id without secret", func(c *s3sink.Config) { c.AccessKeyID = secret.New("AKIA") }, "access_key_id"},
		{"bad endpoint", func(c *s3sink.Config) { c.Endpoint = "127.0.0.1:9000" }, "endpoint"},
		{"bad compression", func(c *s3sink.Config) { c.Compression = "lz5" }, "compression"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.QuarantinePrefix != "vaultterm/_quarantine" || c.PartSize != s3sink.DefaultPartSize || c.Checksums != s3client.ChecksumsWhenSupported {
					t.Fatalf("defaults not applied: %+v", c)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	c, err := sinks.New("s3")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*s3sink.Config); !ok {
		t.Fatalf("sinks.New(s3) = %T", c)
	}
}

func TestConformance(t *testing.T) {
	for name, start := range servers() {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			n := 0
			sinktest.Run(t, func(t *testing.T) (sinks.Sink, sinks.Reader) {
				n++ // a fresh table prefix per subtest is a fresh, empty sink
				s := newSink(t, srv, func(c *s3sink.Config) { c.Prefix = fmt.Sprintf("conf%d/events", n) })
				return s, s
			})
		})
	}
}

// TestCommitAbortsStaleUploads: an upload left by a killed attempt (it could
// not abort) is aborted once the window's object is committed.
func TestCommitAbortsStaleUploads(t *testing.T) {
	srv := s3test.Versity(t)
	s := newSink(t, srv, nil)
	ctx := context.Background()
	w := window
	key := s.Key(w)
	out, err := s.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	other := s.Key(event.Window{Org: w.Org, Start: w.End, End: w.End.Add(w.End.Sub(w.Start))})
	keep, err := s.Client().CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &srv.Bucket, Key: &other})
	if err != nil {
		t.Fatal(err)
	}
	if ups, _ := s.IncompleteUploads(ctx); len(ups) != 2 {
		t.Fatalf("setup: %d incomplete uploads, want 2", len(ups))
	}
	if _, err := writeWindow(t, s, w, sinktest.IDs("ev", 0, 500), 0); err != nil {
		t.Fatal(err)
	}
	ups, err := s.IncompleteUploads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 1 || ups[0].UploadID != aws.ToString(keep.UploadId) {
		t.Fatalf("after commit: %+v; want only the other window's upload %s (stale %s aborted)", ups, aws.ToString(keep.UploadId), aws.ToString(out.UploadId))
	}
}
