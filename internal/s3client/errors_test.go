package s3client_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// TestClassify: against versitygw, refused credentials and a missing
// bucket wrap the caller's marker and say what to check; a missing key
// does not (a retry, or a later write, can change it).
func TestClassify(t *testing.T) {
	srv := s3test.Versity(t)
	permanent := errors.New("caller's permanent marker")
	ctx := context.Background()
	put := func(srv *s3test.Server, bucket string) error {
		cl, err := s3client.NewClient(ctx, srv.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: strings.NewReader("x")})
		return s3client.Classify(s3client.OpError("PutObject", err), permanent, bucket, "k", "a test")
	}
	get := func() error {
		cl, err := s3client.NewClient(ctx, srv.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		_, err = cl.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(srv.Bucket), Key: aws.String("missing")})
		if !s3client.IsNotFound(err) {
			t.Errorf("IsNotFound(%v) = false", err)
		}
		return s3client.Classify(s3client.OpError("GetObject", err), permanent, srv.Bucket, "missing", "")
	}
	bad := *srv
	bad.SecretKey = "wrong"
	tests := []struct {
		name      string
		err       error
		permanent bool
		want      []string
	}{
		{"refused credentials", put(&bad, srv.Bucket), true, []string{"s3://vaultsink-test/k (a test): ", "credentials were refused", "s3:PutObject"}},
		{"missing bucket", put(srv, "nope"), true, []string{"s3://nope/k (a test): ", "check the bucket name and region"}},
		{"missing key", get(), false, []string{"s3://vaultsink-test/missing: getObject: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := errors.Is(tc.err, permanent); got != tc.permanent {
				t.Errorf("errors.Is(err, permanent) = %t, want %t: %v", got, tc.permanent, tc.err)
			}
			for _, w := range tc.want {
				if !strings.Contains(tc.err.Error(), w) {
					t.Errorf("error does not contain %q: %v", w, tc.err)
				}
			}
		})
	}
	if s3client.Classify(nil, permanent, "b", "k", "") != nil {
		t.Error("Classify(nil) is not nil")
	}
}

// TestCheckBucket: an existing bucket is ok; a missing one fails with a
// hint naming the section's bucket key.
func TestCheckBucket(t *testing.T) {
	srv := s3test.Versity(t)
	ctx := context.Background()
	cl, err := s3client.NewClient(ctx, srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	if r := s3client.CheckBucket(ctx, cl, srv.Bucket, "checkpoint"); r.Status != check.OK {
		t.Errorf("existing bucket: %+v", r)
	}
	r := s3client.CheckBucket(ctx, cl, "nope", "orgs[2].sink")
	if r.Status != check.Fail || !strings.Contains(r.Msg, "bucket nope does not exist") || !strings.Contains(r.Hint, "orgs[2].sink.bucket") {
		t.Errorf("missing bucket: %+v", r)
	}
}
