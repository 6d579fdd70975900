package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/checkpoint/checkpointtest"
	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

func newS3Store(t testing.TB, srv *s3test.Server, prefix string) *checkpoint.S3Store {
	t.Helper()
	st, err := checkpoint.NewS3Store(context.Background(), checkpoint.S3Config{
		ClientConfig: srv.ClientConfig(), Bucket: srv.Bucket, Prefix: prefix,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestS3StoreConformance(t *testing.T) {
	servers := map[string]func(testing.TB) *s3test.Server{
		"versitygw": s3test.Versity,
		"gofakes3":  s3test.GoFakeS3,
	}
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			srv := start(t)
			n := 0
			checkpointtest.Run(t, func(t *testing.T) checkpoint.Store {
				n++
				return newS3Store(t, srv, fmt.Sprintf("state%d", n))
			})
		})
	}
}

func TestS3StoreCAS(t *testing.T) {
	srv := s3test.Versity(t)
	ctx := context.Background()
	a, b := newS3Store(t, srv, ""), newS3Store(t, srv, "")

	cp := checkpointtest.Full("org_cas")
	if _, err := a.Put(ctx, cp); err != nil {
		t.Fatal(err)
	}
	// A second creator loses.
	if _, err := b.Put(ctx, cp); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("second create = %v, want ErrConflict", err)
	}
	ra, err := a.Get(ctx, "org_cas")
	if err != nil {
		t.Fatal(err)
	}
	rb, err := b.Get(ctx, "org_cas")
	if err != nil {
		t.Fatal(err)
	}
	ra.Events++
	if _, err := a.Put(ctx, ra); err != nil {
		t.Fatal(err)
	}
	rb.Events += 2
	if _, err := b.Put(ctx, rb); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("stale put = %v, want ErrConflict", err)
	}
	// A put whose object was deleted since it was read is a conflict too.
	if err := a.Delete(ctx, "org_cas"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, rb); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("put after delete = %v, want ErrConflict", err)
	}
	orgs, err := a.List(ctx)
	if err != nil || len(orgs) != 0 {
		t.Fatalf("List = %v, %v", orgs, err)
	}
}

func TestS3StoreCorrupt(t *testing.T) {
	srv := s3test.Versity(t)
	st := newS3Store(t, srv, "vaultsink/state")
	client, err := s3client.NewClient(context.Background(), srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"org_trunc": `{"org_id":"org_trunc","end":`, "org_other": `{"org_id":"someone_else"}`} {
		_, err := client.PutObject(context.Background(), &s3.PutObjectInput{
			Bucket: aws.String(srv.Bucket), Key: aws.String("vaultsink/state/" + name + ".json"), Body: strings.NewReader(body),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Get(context.Background(), name)
		if err == nil || errors.Is(err, checkpoint.ErrNotFound) {
			t.Fatalf("Get of a corrupt checkpoint = %v", err)
		}
		for _, part := range []string{srv.Bucket, "vaultsink/state/" + name + ".json", "vaultsink checkpoint reset --config <config> --org " + name + " --yes"} {
			if !strings.Contains(err.Error(), part) {
				t.Fatalf("error %q does not name %q", err, part)
			}
		}
	}
}

func TestS3StoreAccessDenied(t *testing.T) {
	srv := s3test.Versity(t)
	bad := *srv
	bad.SecretKey = "wrong"
	st := newS3Store(t, &bad, "")
	_, err := st.Put(context.Background(), checkpointtest.Full("org_x"))
	if !errors.Is(err, checkpoint.ErrPermanent) || !strings.Contains(err.Error(), "s3:PutObject") {
		t.Fatalf("Put with a wrong secret = %v, want a permanent error naming s3:PutObject", err)
	}
}

func TestS3ConfigRegistered(t *testing.T) {
	c, err := checkpoint.New("s3")
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := c.(*checkpoint.S3Config)
	if !ok {
		t.Fatalf("checkpoint.New(s3) = %T", c)
	}
	sc.SetDefaults()
	if err := sc.Validate(); err == nil || !strings.HasPrefix(err.Error(), "bucket") {
		t.Fatalf("Validate without bucket = %v", err)
	}
	if sc.Prefix != checkpoint.DefaultS3Prefix {
		t.Fatalf("default prefix %q", sc.Prefix)
	}
}

// TestS3StoreLostAnswer: a Put whose write landed but whose answer was cut
// is retried by the SDK, and the retry's condition fails against that very
// write. The store recognises its own write by its put token and succeeds;
// it used to report a conflict, and the runner took its own write for
// another process's (lease lost to itself).
func TestS3StoreLostAnswer(t *testing.T) {
	srv := s3test.Versity(t)
	proxy := s3test.NewFaultProxy(t, srv.Endpoint)
	st := newS3Store(t, srv.WithEndpoint(proxy.URL), "")
	ctx := context.Background()
	cp := checkpointtest.Full("org_lost")
	proxy.Add(s3test.Rule{Op: s3test.OpPutObject, Fault: s3test.FaultCutResponse, Times: 1})
	v1, err := st.Put(ctx, cp) // If-None-Match: *
	if err != nil {
		t.Fatalf("create whose answer was cut: %v", err)
	}
	cp.Version = v1
	cp.Events++
	proxy.Add(s3test.Rule{Op: s3test.OpPutObject, Fault: s3test.FaultCutResponse, Times: 1})
	v2, err := st.Put(ctx, cp) // If-Match: v1
	if err != nil {
		t.Fatalf("update whose answer was cut: %v", err)
	}
	if proxy.Injected(s3test.OpPutObject) != 2 {
		t.Fatalf("%d faults injected, want 2", proxy.Injected(s3test.OpPutObject))
	}
	got, err := newS3Store(t, srv, "").Get(ctx, "org_lost")
	if err != nil || got.Version != v2 || got.Events != cp.Events {
		t.Fatalf("stored %+v (%v), want version %s with %d events", got, err, v2, cp.Events)
	}
	// Another writer's change is still a conflict.
	other := newS3Store(t, srv, "")
	cp.Events++
	cp.Version = v2
	if _, err := other.Put(ctx, cp); err != nil {
		t.Fatal(err)
	}
	cp.Events++
	if _, err := st.Put(ctx, cp); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("put over another writer's change: %v, want ErrConflict", err)
	}
}
