package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
)

var _ sinks.Checker = (*Config)(nil)

// Check checks, as the sink would use them, the client's settings, the
// bucket (HeadBucket), that a probe object can be written (with the
// sink's encryption, storage class and tags), read back and deleted under
// the data prefix and under the quarantine prefix (in their hidden
// "_vaultsink" folders, which Hive readers skip), and whether the store
// honours conditional writes (ProbeConditionalWrites). Building the sink
// has no side effect, so Check uses one; it leaves no object behind unless
// a delete is refused, which it reports.
func (c *Config) Check(ctx context.Context, section string) []check.Result {
	s, err := New(ctx, *c, sinks.Env{})
	if err != nil {
		return []check.Result{check.Failf(s3client.CredentialsHint(section), "s3 client: %v", err)}
	}
	defer s.Close()
	bucket := s3client.CheckBucket(ctx, s.client, s.cfg.Bucket, section)
	if bucket.Status == check.Fail {
		return []check.Result{bucket} // every other call would fail the same way
	}
	rs := []check.Result{bucket}
	for _, p := range []struct{ prefix, key string }{{s.cfg.Prefix, "prefix"}, {s.cfg.QuarantinePrefix, "quarantine_prefix"}} {
		rs = append(rs, s.checkWrite(ctx, p.prefix, section+"."+p.key))
	}
	return append(rs, s.checkConditional(ctx, section))
}

// checkWrite writes a probe object under prefix's hidden folder with the
// sink's object settings, reads it back and deletes it; key is the config
// key of prefix.
func (s *Sink) checkWrite(ctx context.Context, prefix, key string) check.Result {
	obj := prefix + "/_vaultsink/check-" + rand.Text()
	where := fmt.Sprintf("s3://%s/%s/", s.cfg.Bucket, prefix)
	body := []byte("vaultsink check-config probe\n")
	p := s.params(obj, "text/plain", nil)
	fail := func(op string, err error) check.Result {
		return check.Failf(fmt.Sprintf("the credentials need %s on arn:aws:s3:::%s/%s/*, or %s is not the prefix meant",
			s3client.PermissionFor(op), s.cfg.Bucket, prefix, key),
			"%s: %v", where, classify(s3client.OpError(op, err), s.cfg.Bucket, obj, "check-config probe"))
	}
	if _, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.cfg.Bucket, Key: &obj,
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String(p.contentType),
		ServerSideEncryption: p.sse, SSEKMSKeyId: p.kmsKeyID, StorageClass: p.storageClass, Tagging: p.tagging}); err != nil {
		return fail("PutObject", err)
	}
	deleted := false
	defer func() { // on the paths that return before the DeleteObject below
		if !deleted {
			_, _ = s.client.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &obj})
		}
	}()
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &obj})
	if err != nil {
		return fail("GetObject", err)
	}
	got, err := io.ReadAll(io.LimitReader(out.Body, int64(len(body))+1))
	out.Body.Close()
	if err != nil {
		return fail("GetObject", err)
	}
	if !bytes.Equal(got, body) {
		return check.Failf("the store does not return what was written: check "+key+"'s endpoint and any proxy in front of it",
			"%s: the probe object read back differs from what was written (%d bytes, want %d)", where, len(got), len(body))
	}
	deleted = true
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &obj}); err != nil {
		r := fail("DeleteObject", err)
		r.Hint += fmt.Sprintf(" (commits delete quarantine objects; remove the probe by hand: `aws s3 rm s3://%s/%s`)", s.cfg.Bucket, obj)
		return r
	}
	return check.OKf("%s: a probe object written, read back and deleted", where)
}

// checkConditional reports what ProbeConditionalWrites finds.
func (s *Sink) checkConditional(ctx context.Context, section string) check.Result {
	c, err := s.ProbeConditionalWrites(ctx)
	if err != nil {
		return check.Failf(fmt.Sprintf("the credentials need s3:PutObject and s3:AbortMultipartUpload under %s.prefix", section),
			"conditional-write probe: %v", err)
	}
	if c.Put && c.Multipart {
		return check.OKf("conditional writes honoured (PutObject and CompleteMultipartUpload): %s", c.Guarantee())
	}
	return check.Warnf("use a store that honours If-None-Match and If-Match (AWS S3, versitygw 1.8), or keep to one writer per org",
		"conditional writes honoured on PutObject: %t, on CompleteMultipartUpload: %t: %s", c.Put, c.Multipart, c.Guarantee())
}
