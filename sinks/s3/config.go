package s3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
)

// Checksum settings of ClientConfig.Checksums.
const (
	ChecksumsWhenSupported = "when_supported"
	ChecksumsWhenRequired  = "when_required"
)

// Part sizes: S3 refuses parts under 5 MiB except the last one.
const (
	MinPartSize     = 5 << 20
	DefaultPartSize = 8 << 20
)

// ClientConfig is what every S3 client of vaultsink is built from: the sink's
// and the S3 checkpoint store's sections embed it.
type ClientConfig struct {
	Region    string `yaml:"region"`
	Endpoint  string `yaml:"endpoint"`   // custom endpoint for S3-compatible stores
	PathStyle bool   `yaml:"path_style"` // bucket in the path, not the host name
	// Checksums is when_supported (AWS default) or when_required, which
	// third-party servers (MinIO, Ceph, R2, versitygw) need when they do not
	// understand the SDK's default flexible checksums.
	Checksums string `yaml:"checksums"`
	// Static credentials; when both are empty the SDK's default chain is
	// used (environment, shared config/profile, web identity, container and
	// instance metadata).
	AccessKeyID         secret.Secret `yaml:"access_key_id"`
	AccessKeyIDFile     string        `yaml:"access_key_id_file"`
	SecretAccessKey     secret.Secret `yaml:"secret_access_key"`
	SecretAccessKeyFile string        `yaml:"secret_access_key_file"`
	// RoleARN, when set, is assumed (STS AssumeRole) with the credentials above.
	RoleARN string `yaml:"role_arn"`
	// MaxAttempts bounds the SDK retryer (throttling, 5xx, connection errors).
	MaxAttempts int `yaml:"max_attempts"`
	// MaxBackoff caps the exponential backoff between attempts.
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// Timeout bounds one attempt of one request: connecting, sending the
	// request (a whole part of an upload) and receiving the answer's
	// headers. A GetObject's body streams on after its headers, bounded
	// only by the caller's context.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultTimeout is ClientConfig.Timeout's default: an 8 MiB part needs
// about 1.1 Mbit/s to go up within it.
const DefaultTimeout = time.Minute

// SetDefaults fills unset fields.
func (c *ClientConfig) SetDefaults() {
	if c.Checksums == "" {
		c.Checksums = ChecksumsWhenSupported
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 8
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 20 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
}

// Validate checks the section; errors name the field.
func (c *ClientConfig) Validate() error {
	switch c.Checksums {
	case ChecksumsWhenSupported, ChecksumsWhenRequired:
	default:
		return fmt.Errorf("checksums: %q is not one of %s, %s", c.Checksums, ChecksumsWhenSupported, ChecksumsWhenRequired)
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("max_attempts: %d must be at least 1", c.MaxAttempts)
	}
	if c.MaxBackoff < 0 {
		return fmt.Errorf("max_backoff: %s must not be negative", c.MaxBackoff)
	}
	if c.Timeout < time.Second {
		return fmt.Errorf("timeout: %s must be at least 1s", c.Timeout)
	}
	if !c.AccessKeyID.Empty() && c.AccessKeyIDFile != "" {
		return errors.New("access_key_id and access_key_id_file: set at most one")
	}
	if !c.SecretAccessKey.Empty() && c.SecretAccessKeyFile != "" {
		return errors.New("secret_access_key and secret_access_key_file: set at most one")
	}
	hasID := !c.AccessKeyID.Empty() || c.AccessKeyIDFile != ""
	hasSecret := !c.SecretAccessKey.Empty() || c.SecretAccessKeyFile != ""
	if hasID != hasSecret {
		return errors.New("access_key_id and secret_access_key: set both or neither")
	}
	if c.Endpoint != "" && !strings.HasPrefix(c.Endpoint, "http://") && !strings.HasPrefix(c.Endpoint, "https://") {
		return fmt.Errorf("endpoint: %q must start with http:// or https://", c.Endpoint)
	}
	return nil
}

func readSecret(inline secret.Secret, file, field string) (secret.Secret, error) {
	if file == "" {
		return inline, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return secret.Secret{}, fmt.Errorf("%s_file: %w", field, err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return secret.Secret{}, fmt.Errorf("%s_file: %s is empty", field, file)
	}
	return secret.New(v), nil
}

// NewClient builds an S3 client from c (defaults applied to a copy).
func NewClient(ctx context.Context, c ClientConfig) (*s3.Client, error) {
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	id, err := readSecret(c.AccessKeyID, c.AccessKeyIDFile, "access_key_id")
	if err != nil {
		return nil, err
	}
	key, err := readSecret(c.SecretAccessKey, c.SecretAccessKeyFile, "secret_access_key")
	if err != nil {
		return nil, err
	}
	maxAttempts, maxBackoff := c.MaxAttempts, c.MaxBackoff
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		// A server that accepted the request but never answers.
		tr.ResponseHeaderTimeout = c.Timeout
	}).WithDialerOptions(func(d *net.Dialer) { d.Timeout = min(c.Timeout, 30*time.Second) })
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = maxAttempts
				o.MaxBackoff = maxBackoff
				// The client-side retry quota would turn a burst of 503
				// SlowDown during a large upload into a hard failure; the
				// backoff already paces us.
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	if !id.Empty() {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(id.Reveal(), key.Reveal(), "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load aws config: %w", err)
	}
	if cfg.Region == "" {
		if c.Endpoint == "" {
			return nil, errors.New("region: not set and not found in the environment or shared config")
		}
		// S3-compatible servers mostly ignore the region but SigV4 needs one.
		cfg.Region = "us-east-1"
	}
	if c.RoleARN != "" {
		stsClient := sts.NewFromConfig(cfg)
		cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(stsClient, c.RoleARN,
			func(o *stscreds.AssumeRoleOptions) { o.RoleSessionName = "vaultsink" }))
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		o.APIOptions = append(o.APIOptions, attemptTimeout(c.Timeout))
		if c.Checksums == ChecksumsWhenRequired {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}), nil
}

// attemptTimeout gives each attempt of a request (after the retryer, so
// every retry gets its own) a deadline of d. GetObject is left to the
// transport's header timeout: its body streams after the call returns,
// and a deadline there would cut it.
func attemptTimeout(d time.Duration) func(*middleware.Stack) error {
	return func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("vaultsinkAttemptTimeout",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				if middleware.GetOperationName(ctx) == "GetObject" {
					return next.HandleFinalize(ctx, in)
				}
				ctx, cancel := context.WithTimeout(ctx, d)
				defer cancel()
				out, md, err := next.HandleFinalize(ctx, in)
				if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
					err = fmt.Errorf("no answer within timeout %s (the S3 client's per-request timeout): %w", d, err)
				}
				return out, md, err
			}), "Retry", middleware.After)
	}
}

// Config is the `sink:` section of type s3.
type Config struct {
	ClientConfig `yaml:",inline"`
	Bucket       string `yaml:"bucket"`
	// Prefix is the table prefix readers scan, e.g. "vaultterm/events".
	Prefix string `yaml:"prefix"`
	// QuarantinePrefix defaults to a sibling of Prefix ("vaultterm/_quarantine");
	// it must never lie under Prefix.
	QuarantinePrefix string            `yaml:"quarantine_prefix"`
	SSE              string            `yaml:"sse"` // "", AES256 or aws:kms
	SSEKMSKeyID      string            `yaml:"sse_kms_key_id"`
	StorageClass     string            `yaml:"storage_class"`
	Tags             map[string]string `yaml:"tags"`
	// PartSize is the multipart part size in bytes; memory use is about two parts.
	PartSize      int64 `yaml:"part_size"`
	pqenc.Options `yaml:",inline"`
}

func init() {
	sinks.Register("s3", func() sinks.Config { return &Config{} })
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	c.ClientConfig.SetDefaults()
	c.Options.SetDefaults()
	c.Prefix = cleanPrefix(c.Prefix)
	if c.QuarantinePrefix == "" {
		c.QuarantinePrefix = defaultQuarantinePrefix(c.Prefix)
	}
	c.QuarantinePrefix = cleanPrefix(c.QuarantinePrefix)
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
}

func cleanPrefix(p string) string { return strings.Trim(p, "/") }

// defaultQuarantinePrefix is the sibling "_quarantine" of the table prefix's
// last element, so Hive readers of the table never see quarantine files.
func defaultQuarantinePrefix(prefix string) string {
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		return prefix[:i] + "/_quarantine"
	}
	return "_quarantine"
}

// Validate checks the section; errors name the field.
func (c *Config) Validate() error {
	if err := c.ClientConfig.Validate(); err != nil {
		return err
	}
	if c.Bucket == "" {
		return errors.New("bucket: required")
	}
	if c.Prefix == "" {
		// An empty prefix makes every key in the bucket part of the table
		// and leaves no sibling for the quarantine.
		return errors.New("prefix: required (e.g. vaultterm/events)")
	}
	if Overlaps(c.Prefix, c.QuarantinePrefix) {
		return fmt.Errorf("quarantine_prefix: %q overlaps prefix %q; readers of the table would scan quarantine files", c.QuarantinePrefix, c.Prefix)
	}
	switch c.SSE {
	case "", "AES256", "aws:kms":
	default:
		return fmt.Errorf("sse: %q is not one of \"\", AES256, aws:kms", c.SSE)
	}
	if c.SSEKMSKeyID != "" && c.SSE != "aws:kms" {
		return errors.New("sse_kms_key_id: set only with sse: aws:kms")
	}
	if c.PartSize < MinPartSize {
		return fmt.Errorf("part_size: %d is below the S3 minimum of %d bytes (5 MiB)", c.PartSize, MinPartSize)
	}
	if c.PartSize > 5<<30 {
		return fmt.Errorf("part_size: %d is above the S3 maximum of 5 GiB", c.PartSize)
	}
	return c.Options.Validate()
}

// Overlaps reports whether one of two key prefixes contains the other, element
// by element ("a/b" contains "a/b/c" but not "a/bc"). The config loader uses
// it to keep the checkpoint prefix outside the data prefix.
func Overlaps(a, b string) bool {
	a, b = cleanPrefix(a)+"/", cleanPrefix(b)+"/"
	if a == "/" || b == "/" {
		return true
	}
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// Build creates the sink.
func (c *Config) Build(ctx context.Context, env sinks.Env) (sinks.Sink, error) {
	return New(ctx, *c, env)
}
