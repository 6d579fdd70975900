package checkpoint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	s3sink "github.com/vaultsink/vaultsink/sinks/s3"
)

// DefaultS3Prefix is where the S3 store keeps checkpoints unless configured.
const DefaultS3Prefix = "vaultsink/state"

// S3Config is the `checkpoint:` section of type s3. Credentials, region,
// endpoint and checksums are the S3 sink's settings.
type S3Config struct {
	s3sink.ClientConfig `yaml:",inline"`
	Bucket              string `yaml:"bucket"`
	// Prefix holds one <org>.json per org; keep it outside the sink's data
	// prefix (s3sink.Overlaps tells) so table readers never scan state.
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

// Build creates the store.
func (c *S3Config) Build(ctx context.Context, log *slog.Logger) (Store, error) {
	return NewS3Store(ctx, *c, log)
}

// S3Store keeps one JSON object per org in S3 and makes every Put a
// compare-and-swap on the object's ETag (conditional writes), so two daemons
// cannot both advance an org.
type S3Store struct {
	client *s3.Client
	bucket string
	prefix string
	log    *slog.Logger
}

var _ Store = (*S3Store)(nil)

// NewS3Store builds the store (defaults applied to a copy of cfg).
func NewS3Store(ctx context.Context, cfg S3Config, log *slog.Logger) (*S3Store, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("s3 checkpoint config: %w", err)
	}
	client, err := s3sink.NewClient(ctx, cfg.ClientConfig)
	if err != nil {
		return nil, fmt.Errorf("s3 checkpoint client: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &S3Store{client: client, bucket: cfg.Bucket, prefix: cfg.Prefix, log: log}, nil
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
	return fmt.Errorf("%s: %w", op, s3sink.Classify(s3sink.OpError(s3op, err), s.bucket, key, what))
}

// Get returns the org's checkpoint with Version set to the object's ETag.
func (s *S3Store) Get(ctx context.Context, org string) (Checkpoint, error) {
	key, err := s.key(org)
	if err != nil {
		return Checkpoint{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		var nsk *types.NoSuchKey
		if errors.As(err, &nsk) {
			return Checkpoint{}, ErrNotFound
		}
		return Checkpoint{}, s.fail("get checkpoint", "GetObject", err, key, org)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return Checkpoint{}, s.fail("get checkpoint", "GetObject", err, key, org)
	}
	var cp Checkpoint
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&cp); err != nil || cp.Org != org {
		if err == nil {
			err = fmt.Errorf("it names org %q", cp.Org)
		}
		return Checkpoint{}, fmt.Errorf("checkpoint s3://%s/%s is corrupt: %w; repair it by hand "+
			"(aws s3 cp the object, fix the JSON, put it back) or remove it with `vaultsink checkpoint reset %s` "+
			"to re-sync the org from its start (rewriting the same objects, no duplicates)", s.bucket, key, err, org)
	}
	cp.Version = aws.ToString(out.ETag)
	if cp.Version == "" {
		return Checkpoint{}, fmt.Errorf("get checkpoint s3://%s/%s: the server returned no ETag; it cannot do compare-and-swap", s.bucket, key)
	}
	return cp, nil
}

// Put writes cp if the stored object is still cp.Version (If-Match), or
// does not exist yet when cp.Version is empty (If-None-Match: *). A failed
// condition is ErrConflict.
func (s *S3Store) Put(ctx context.Context, cp Checkpoint) (string, error) {
	key, err := s.key(cp.Org)
	if err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode checkpoint of org %s: %w", cp.Org, err)
	}
	in := &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/json"),
	}
	if cp.Version == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(cp.Version)
	}
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		if isConflict(err, cp.Version != "") {
			return "", fmt.Errorf("put checkpoint s3://%s/%s: %w", s.bucket, key, ErrConflict)
		}
		return "", s.fail("put checkpoint", "PutObject", err, key, cp.Org)
	}
	etag := aws.ToString(out.ETag)
	if etag == "" {
		return "", fmt.Errorf("put checkpoint s3://%s/%s: the server returned no ETag; it cannot do compare-and-swap", s.bucket, key)
	}
	return etag, nil
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
