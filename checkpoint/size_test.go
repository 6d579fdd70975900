package checkpoint_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/checkpoint/checkpointtest"
	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks/s3/s3test"
)

// oversized is a checkpoint document of org over MaxDocBytes, as a
// version without the limit could write: a 1.5 MiB last_error.
func oversized(t *testing.T, org string) []byte {
	t.Helper()
	doc := fmt.Sprintf(`{"org_id":%q,"end":"2026-06-01T10:00:00Z","last_error":"%s"}`, org, strings.Repeat("x", 3<<19))
	return []byte(doc)
}

// TestFileGetTooLarge: a checkpoint file over the limit is refused with
// its size, the limit and complete repair commands, without being read
// whole; Put does not overwrite it blindly.
func TestFileGetTooLarge(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	p := filepath.Join(dir, "org_1.json")
	doc := oversized(t, "org_1")
	if err := os.WriteFile(p, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get(context.Background(), "org_1")
	if err == nil || errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Get of a %d-byte checkpoint = %v", len(doc), err)
	}
	for _, want := range []string{p, fmt.Sprint(len(doc)), fmt.Sprint(checkpoint.MaxDocBytes), "last_error",
		"vaultsink checkpoint reset --config <config> --org org_1 --yes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if len(err.Error()) > 1024 {
		t.Errorf("error of %d bytes", len(err.Error()))
	}
	if _, err := s.Put(context.Background(), checkpointtest.Full("org_1")); !errors.Is(err, checkpoint.ErrConflict) {
		t.Fatalf("Put over it with an empty version = %v, want ErrConflict", err)
	}
}

// TestS3GetTooLarge: the same for an object over the limit (written by
// hand or by a version without it), and the repair commands are complete.
func TestS3GetTooLarge(t *testing.T) {
	srv := s3test.Versity(t)
	st := newS3Store(t, srv, "vaultsink/state")
	client, err := s3client.NewClient(context.Background(), srv.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	doc := oversized(t, "org_big")
	key := "vaultsink/state/org_big.json"
	if _, err := client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(srv.Bucket), Key: aws.String(key), Body: strings.NewReader(string(doc)),
	}); err != nil {
		t.Fatal(err)
	}
	_, err = st.Get(context.Background(), "org_big")
	if err == nil || errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("Get of a %d-byte checkpoint = %v", len(doc), err)
	}
	for _, want := range []string{"s3://" + srv.Bucket + "/" + key, fmt.Sprint(len(doc)), fmt.Sprint(checkpoint.MaxDocBytes),
		"aws s3 cp s3://" + srv.Bucket + "/" + key + " org_big.json", "vaultsink checkpoint reset --config <config> --org org_big --yes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}
