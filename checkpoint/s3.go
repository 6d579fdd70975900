package checkpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultsink/vaultsink/internal/s3client"
)

// DefaultS3Prefix is where the S3 store keeps checkpoints unless configured.
const DefaultS3Prefix = "vaultsink/state"

// S3Config is the `checkpoint:` section of type s3. Credentials, region,
// endpoint and checksums are the S3 sink's settings (s3client.ClientConfig).
type S3Config struct {
	s3client.ClientConfig `yaml:",inline"`
	Bucket                string `yaml:"bucket"`
	// Prefix holds one <org>.json per org; it must lie outside the sink's
	// areas (the config loader checks, by Areas) so table readers never
	// scan state.
	Prefix string `yaml:"prefix"`
}

func init() {
	Register("s3", func() Config { return &S3Config{} })
}

// SetDefaults fills unset fields.
func (c *S3Config) SetDefaults() {
	c.ClientConfig.SetDefaults()
	c.Prefix = strings.Trim(c.Prefix, "/")
	if c.Prefix == "" {
		c.Prefix = DefaultS3Prefix
	}
}

// Validate checks the section; errors name the field.
func (c *S3Config) Validate() error {
	if err := c.ClientConfig.Validate(); err != nil {
		return err
	}
	if c.Bucket == "" {
		return errors.New("bucket: required")
	}
	return nil
}

// Areas is where the store writes, as s3://bucket/prefix.
func (c *S3Config) Areas() []string { return []string{"s3://" + c.Bucket + "/" + c.Prefix} }

// Build creates the store.
func (c *S3Config) Build(ctx context.Context, log *slog.Logger) (Store, error) {
	return NewS3Store(ctx, *c, log)
}

// S3Store keeps one JSON object per org in S3 and makes every Put a
// compare-and-swap on the object's ETag (conditional writes), so two daemons
// cannot both advance an org.
//
// Get is a conditional GET: the store remembers, per org, the last document
// it read or wrote and its ETag, and sends If-None-Match with it; a 304 Not
// Modified answers the remembered document without its body crossing the
// network, which is what most reads of an idle org get.
type S3Store struct {
	client *s3.Client
	bucket string
	prefix string
	log    *slog.Logger

	mu   sync.Mutex
	seen map[string]seenDoc // org -> the last document read or written
}

// seenDoc is a document as the store last read or wrote it.
type seenDoc struct {
	etag string
	data []byte
}

// maxSeenBytes: larger documents are not remembered (read whole every
// time), so that the memory the store keeps stays small per org.
const maxSeenBytes = 64 << 10

var _ Store = (*S3Store)(nil)

// NewS3Store builds the store (defaults applied to a copy of cfg).
func NewS3Store(ctx context.Context, cfg S3Config, log *slog.Logger) (*S3Store, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 checkpoint config: %w", err)
	}
	client, err := s3client.NewClient(ctx, cfg.ClientConfig)
	if err != nil {
		return nil, fmt.Errorf("s3 checkpoint client: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &S3Store{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, log: log, seen: map[string]seenDoc{}}, nil
}

func (s *S3Store) key(org string) (string, error) {
	if org == "" || strings.ContainsAny(org, "/\\") || org == "." || org == ".." {
		return "", fmt.Errorf("checkpoint: invalid org id %q", org)
	}
	return s.prefix + "/" + org + ".json", nil
}

func (s *S3Store) fail(op, s3op string, err error, key, org string) error {
	what := ""
	if org != "" {
		what = "checkpoint of org " + org
	}
	return fmt.Errorf("%s: %w", op, s3client.Classify(s3client.OpError(s3op, err), ErrPermanent, s.bucket, key, what))
}

// Get returns the org's checkpoint with Version set to the object's ETag.
// When the store has seen the org's document before, the GET is
// conditional (If-None-Match: its ETag), and a 304 answers that document.
func (s *S3Store) Get(ctx context.Context, org string) (Checkpoint, error) {
	key, err := s.key(org)
	if err != nil {
		return Checkpoint{}, err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	s.mu.Lock()
	prev, known := s.seen[org]
	s.mu.Unlock()
	if known {
		in.IfNoneMatch = aws.String(prev.etag)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if known && notModified(err) {
			// Decoded anew on every call: callers own (and change) what
			// Get returns, the remembered bytes stay as they were.
			return s.decode(key, org, prev.data, prev.etag)
		}
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			s.forget(org)
			return Checkpoint{}, ErrNotFound
		}
		return Checkpoint{}, s.fail("get checkpoint", "GetObject", err, key, org)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, MaxDocBytes+1))
	if err != nil {
		return Checkpoint{}, s.fail("get checkpoint", "GetObject", err, key, org)
	}
	if len(data) > MaxDocBytes {
		s.forget(org)
		size := int64(len(data))
		if n := aws.ToInt64(out.ContentLength); n > size {
			size = n
		}
		return Checkpoint{}, s.corrupt(key, org, fmt.Errorf("it is %d bytes, over the limit of %d bytes of a checkpoint (shorten its largest member, last_error say)", size, MaxDocBytes))
	}
	etag := aws.ToString(out.ETag)
	cp, err := s.decode(key, org, data, etag)
	if err != nil {
		s.forget(org)
		return Checkpoint{}, err
	}
	s.remember(org, etag, data)
	return cp, nil
}

// decode parses the document of org read from key, with version etag.
func (s *S3Store) decode(key, org string, data []byte, etag string) (Checkpoint, error) {
	var cp Checkpoint
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cp); err != nil || cp.Org != org {
		if err == nil {
			err = fmt.Errorf("it names org %q", cp.Org)
		}
		return Checkpoint{}, s.corrupt(key, org, err)
	}
	cp.Version = etag
	if cp.Version == "" {
		return Checkpoint{}, fmt.Errorf("get checkpoint s3://%s/%s: the server returned no ETag; it cannot do compare-and-swap", s.bucket, key)
	}
	return cp, nil
}

// remember keeps org's document and its ETag for the next conditional
// Get; data must not be changed afterwards.
func (s *S3Store) remember(org, etag string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if etag == "" || len(data) > maxSeenBytes {
		delete(s.seen, org)
		return
	}
	s.seen[org] = seenDoc{etag: etag, data: data}
}

func (s *S3Store) forget(org string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.seen, org)
}

// notModified: the object still has the ETag sent in If-None-Match.
func notModified(err error) bool {
	var re interface{ HTTPStatusCode() int }
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotModified
}

// corrupt is the error of a checkpoint object that exists but cannot be
// used, with the two ways to repair it, each a complete command.
func (s *S3Store) corrupt(key, org string, err error) error {
	return fmt.Errorf("checkpoint s3://%s/%s is corrupt: %w; repair it by hand "+
		"(`aws s3 cp s3://%s/%s %s.json`, fix the JSON, `aws s3 cp %s.json s3://%s/%s`) or remove it with `%s` "+
		"to re-sync the org from its start (rewriting the same objects, no duplicates)",
		s.bucket, key, err, s.bucket, key, org, org, s.bucket, key, resetCommand(org))
}

// Put writes cp if the stored object is still cp.Version (If-Match), or
// does not exist yet when cp.Version is empty (If-None-Match: *). A failed
// condition is ErrConflict; a document over MaxDocBytes is ErrTooLarge,
// refused before any request.
func (s *S3Store) Put(ctx context.Context, cp Checkpoint) (string, error) {
	key, err := s.key(cp.Org)
	if err != nil {
		return "", err
	}
	data, err := encode(cp)
	if err != nil {
		return "", fmt.Errorf("put checkpoint s3://%s/%s: %w", s.bucket, key, err)
	}
	token := rand.Text()
	in := &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/json"),
		Metadata:      map[string]string{metaPut: token},
	}
	if cp.Version == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(cp.Version)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		s.forget(cp.Org) // the object is not what was last seen, or may not be
		if isConflict(err, cp.Version != "") {
			// The SDK retries a PUT whose answer was lost (a cut
			// connection, a 5xx after the write): the retry's condition
			// then fails against this very write, which the object's put
			// token tells.
			if etag, ok := s.landed(ctx, key, token); ok {
				s.remember(cp.Org, etag, data)
				return etag, nil
			}
			return "", fmt.Errorf("put checkpoint s3://%s/%s: %w", s.bucket, key, ErrConflict)
		}
		return "", s.fail("put checkpoint", "PutObject", err, key, cp.Org)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return "", fmt.Errorf("put checkpoint s3://%s/%s: the server returned no ETag; it cannot do compare-and-swap", s.bucket, key)
	}
	s.remember(cp.Org, etag, data)
	return etag, nil
}

// metaPut is the object metadata key of the random token each Put sends,
// by which a retried Put recognises its own earlier attempt.
const metaPut = "vaultsink-put"

// landed reports whether the object at key was written by the Put that
// sent token, and its ETag.
func (s *S3Store) landed(ctx context.Context, key, token string) (string, bool) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil || out.Metadata[metaPut] != token || aws.ToString(out.ETag) == "" {
		return "", false
	}
	return aws.ToString(out.ETag), true
}

// isConflict: 412 PreconditionFailed is a lost compare-and-swap, 409
// ConditionalRequestConflict a concurrent one, and with If-Match a missing
// object (deleted since it was read) is one too.
func isConflict(err error, ifMatch bool) bool {
	var ae interface{ ErrorCode() string }
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re interface{ HTTPStatusCode() int }
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		return true
	case code == "ConditionalRequestConflict" || status == http.StatusConflict:
		return true
	case ifMatch && (code == "NoSuchKey" || status == http.StatusNotFound):
		return true
	}
	return false
}

// Delete removes the org's checkpoint; deleting a missing one is not an error.
func (s *S3Store) Delete(ctx context.Context, org string) error {
	key, err := s.key(org)
	if err != nil {
		return err
	}
	s.forget(org)
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil
		}
		return s.fail("delete checkpoint", "DeleteObject", err, key, org)
	}
	return nil
}

// List returns the orgs with a checkpoint object under the prefix, sorted.
func (s *S3Store) List(ctx context.Context) ([]string, error) {
	prefix := s.prefix + "/"
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix, Delimiter: aws.String("/")}
	var orgs []string
	for {
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return nil, s.fail("list checkpoints", "ListObjectsV2", err, prefix, "")
		}
		for _, o := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			if org, ok := strings.CutSuffix(name, ".json"); ok && org != "" {
				orgs = append(orgs, org)
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			break
		}
		in.ContinuationToken = page.NextContinuationToken
	}
	sort.Strings(orgs)
	return orgs, nil
}

// Close releases nothing: the S3 client keeps only idle connections.
func (s *S3Store) Close() error { return nil }
