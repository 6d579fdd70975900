package s3client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/internal/secret"
)

// TestClientTimeout: a server that accepts requests and never answers
// (nor reads an upload's body) fails each call within the configured
// timeout per attempt, whatever the caller's context: a stuck store
// cannot hold an org, a worker or a shutdown forever.
func TestClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	client, err := s3client.NewClient(context.Background(), s3client.ClientConfig{
		Endpoint: srv.URL, PathStyle: true, Region: "us-east-1", Checksums: s3client.ChecksumsWhenRequired,
		AccessKeyID: secret.New("id"), SecretAccessKey: secret.New("key"),
		MaxAttempts: 2, MaxBackoff: 10 * time.Millisecond, Timeout: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]func(context.Context) error{
		"PutObject": func(ctx context.Context) error {
			_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("b"), Key: aws.String("k"),
				Body: strings.NewReader(strings.Repeat("x", 1<<20)), ContentLength: aws.Int64(1 << 20)})
			return err
		},
		"GetObject": func(ctx context.Context) error {
			_, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("b"), Key: aws.String("k")})
			return err
		},
		"ListObjectsV2": func(ctx context.Context) error {
			_, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("b")})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			began := time.Now()
			err := call(context.Background())
			took := time.Since(began)
			if err == nil {
				t.Fatal("a call to a server that never answers succeeded")
			}
			// Two attempts of 1s each, and the backoff between them.
			if took > 5*time.Second {
				t.Fatalf("the call took %s: the timeout of 1s per attempt did not hold (%v)", took, err)
			}
			if !strings.Contains(err.Error(), "timeout") {
				t.Errorf("error does not say it timed out: %v", err)
			}
			t.Logf("%s after %s: %v", name, took.Round(10*time.Millisecond), err)
		})
	}
}
