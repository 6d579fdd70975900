package s3test

import (
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// GoFakeS3 serves an in-memory gofakes3 over plain HTTP on 127.0.0.1 with one
// bucket. It does not check signatures and ignores conditions on
// CompleteMultipartUpload: use it for fast tests beside Versity, not instead.
// Plain HTTP matters: over HTTPS with the SDK's default trailing checksums it
// stores corrupted objects.
func GoFakeS3(t testing.TB) *Server {
	t.Helper()
	backend := s3mem.New()
	s := &Server{Region: "us-east-1", AccessKey: "fake", SecretKey: "fake-secret", Bucket: "vaultsink-test"}
	if err := backend.CreateBucket(s.Bucket); err != nil {
		t.Fatalf("gofakes3 create bucket: %v", err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	s.Endpoint = srv.URL
	return s
}
