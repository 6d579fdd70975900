// Package s3test starts real S3 servers for tests on 127.0.0.1 — versitygw
// (a separate process with SigV4 checks and conditional writes) and gofakes3
// (in-process, fast) — and a fault-injecting proxy to put in front of them.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/internal/fsutil"
	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/internal/secret"
)

// VersityVersion is the versitygw release the tests run.
const VersityVersion = "v1.8.0"

// Server is a running S3 server with one empty bucket.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Bucket    string
	// DataDir is versitygw's posix root (a bucket is a directory in it); ""
	// for gofakes3.
	DataDir string
}

// ClientConfig is a client configuration for the server: path style,
// when_required checksums, and retries fast enough for tests.
func (s *Server) ClientConfig() s3client.ClientConfig {
	return s3client.ClientConfig{
		Region: s.Region, Endpoint: s.Endpoint, PathStyle: true,
		Checksums:       s3client.ChecksumsWhenRequired,
		AccessKeyID:     secret.New(s.AccessKey),
		SecretAccessKey: secret.New(s.SecretKey),
		MaxAttempts:     6,
		MaxBackoff:      50 * time.Millisecond,
	}
}

// YAML is the part of a vaultsink config section (sink or checkpoint of
// type s3) that reaches s: bucket, endpoint, region, path style,
// when_required checksums and the keys, one per line, each line indented
// by indent.
func (s *Server) YAML(indent string) string {
	var b strings.Builder
	for _, kv := range [][2]string{
		{"bucket", s.Bucket}, {"endpoint", s.Endpoint}, {"region", s.Region}, {"path_style", "true"},
		{"checksums", "when_required"}, {"access_key_id", s.AccessKey}, {"secret_access_key", s.SecretKey},
	} {
		fmt.Fprintf(&b, "%s%s: %s\n", indent, kv[0], kv[1])
	}
	return b.String()
}

// WithEndpoint returns a copy of s that talks to endpoint (a proxy in front of it).
func (s *Server) WithEndpoint(endpoint string) *Server {
	c := *s
	c.Endpoint = endpoint
	return &c
}

// Versity starts a versitygw process (posix backend) on a free 127.0.0.1
// port with a fresh temp dir and one bucket; it is stopped when t ends. The
// binary comes from $PATH, $(go env GOPATH)/bin or the repository's .tools/,
// and is built into .tools/ on first use (about 1.5 minutes).
func Versity(t testing.TB) *Server {
	t.Helper()
	bin, err := VersityBinary()
	if err != nil {
		t.Fatalf("versitygw: %v", err)
	}
	root := t.TempDir()
	data, meta := filepath.Join(root, "data"), filepath.Join(root, "meta")
	s := &Server{Region: "us-east-1", AccessKey: "vaultsinktest", SecretKey: "vaultsink-test-secret-key", Bucket: "vaultsink-test", DataDir: data}
	for _, d := range []string{data, meta, filepath.Join(data, s.Bucket)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var lastErr error
	for range 3 { // the free port may be taken between probe and start
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		out := &syncWriter{w: &bytes.Buffer{}}
		cmd := exec.Command(bin, "--port", addr, "--region", s.Region, "--quiet", "posix", "--sidecar", meta, data)
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		if err := waitListening(addr, exited, 15*time.Second); err != nil {
			_ = cmd.Process.Kill()
			<-exited
			lastErr = fmt.Errorf("%w; output:\n%s", err, out.String())
			continue
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
		})
		s.Endpoint = "http://" + addr
		return s
	}
	t.Fatalf("versitygw did not start: %v", lastErr)
	return nil
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("versitygw exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("versitygw not listening on %s after %s", addr, timeout)
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// VersityBinary finds or builds the versitygw binary (see Versity).
func VersityBinary() (string, error) {
	binOnce.Do(func() { binPath, binErr = findOrBuild() })
	return binPath, binErr
}

func findOrBuild() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(gopath))) {
			if p := filepath.Join(dir, "bin", "versitygw"); isExec(p) {
				return p, nil
			}
		}
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	tools := filepath.Join(root, ".tools")
	p := filepath.Join(tools, "versitygw")
	if isExec(p) {
		return p, nil
	}
	if err := os.MkdirAll(tools, 0o755); err != nil {
		return "", err
	}
	// Test binaries of several packages run in parallel: one builds, the
	// others wait on the lock and then find the binary.
	unlock, err := fsutil.Lock(filepath.Join(tools, ".versitygw.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExec(p) {
		return p, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/versity/versitygw/cmd/versitygw@"+VersityVersion)
	cmd.Dir = tools // outside the module, so `go install pkg@version` ignores go.mod
	cmd.Env = append(os.Environ(), "GOBIN="+tools, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install versitygw@%s: %w\n%s", VersityVersion, err, out)
	}
	return p, nil
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("versitygw: no go.mod above the working directory to place .tools/ in")
		}
		dir = parent
	}
}
