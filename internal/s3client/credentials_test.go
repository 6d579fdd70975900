package s3client_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/internal/s3client"
)

// imds stands in for the EC2 instance metadata service (IMDSv2 token,
// then the role listing and the role's credentials). role "" is a machine
// without an instance role; tokens false refuses IMDSv2 tokens with 403,
// as a metadata service that only speaks IMDSv1 (or a proxy) does.
func imds(t *testing.T, role string, tokens bool) string {
	t.Helper()
	const base = "/latest/meta-data/iam/security-credentials/"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			if !tokens {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			_, _ = w.Write([]byte("imds-token"))
		case role != "" && r.URL.Path == base:
			_, _ = w.Write([]byte(role))
		case role != "" && r.URL.Path == base+role:
			_, _ = w.Write([]byte(`{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAIMDS","SecretAccessKey":"imds-secret","Token":"imds-session",` +
				`"Expiration":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// bareAWSEnv leaves the SDK nothing to find but the metadata service at
// endpoint: no keys, profile, web identity or container credentials.
func bareAWSEnv(t *testing.T, endpoint string) {
	dir := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", endpoint)
}

// captureSlog points slog.Default at a buffer for the test.
func captureSlog(t *testing.T) *bytes.Buffer {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// TestNoCredentials: with no credentials anywhere the SDK looks, building
// a client fails at once with one error that names every way to provide
// them, and the SDK's own warnings go through slog, not to stderr.
func TestNoCredentials(t *testing.T) {
	logs := captureSlog(t)
	bareAWSEnv(t, imds(t, "", false))
	_, err := s3client.NewClient(context.Background(), s3client.ClientConfig{Region: "eu-west-1"})
	if !errors.Is(err, s3client.ErrNoCredentials) {
		t.Fatalf("NewClient: err = %v, want ErrNoCredentials", err)
	}
	for _, want := range []string{"access_key_id and secret_access_key", "access_key_id_file", "AWS_ACCESS_KEY_ID",
		"AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "IRSA", "instance profile", "instance metadata service"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q:\n%v", want, err)
		}
	}
	if !strings.Contains(logs.String(), `level=DEBUG msg="aws sdk: falling back to IMDSv1`) {
		t.Errorf("the SDK's IMDSv1 fallback did not reach slog at debug:\n%s", logs)
	}
}

// TestInstanceRoleCredentials: where the metadata service has a role, the
// look-up succeeds and the client is built.
func TestInstanceRoleCredentials(t *testing.T) {
	bareAWSEnv(t, imds(t, "vaultsink-role", true))
	cl, err := s3client.NewClient(context.Background(), s3client.ClientConfig{Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cl.Options().Credentials.Retrieve(context.Background())
	if err != nil || creds.AccessKeyID != "ASIAIMDS" {
		t.Fatalf("credentials %+v, %v; want the instance role's", creds, err)
	}
}
