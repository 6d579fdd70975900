package s3client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
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
	"github.com/aws/smithy-go/logging"
	"github.com/aws/smithy-go/middleware"

	"github.com/vaultsink/vaultsink/internal/secret"
)

// Checksum settings of ClientConfig.Checksums.
const (
	ChecksumsWhenSupported = "when_supported"
	ChecksumsWhenRequired  = "when_required"
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
		awsconfig.WithLogger(sdkLogger{}),
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
	if id.Empty() && onlyInstanceMetadata(cfg.Credentials) {
		// Nothing names credentials, so the SDK's chain ends at the
		// instance metadata service. Asked now, a machine without an
		// instance role says so once, here, rather than in every request's
		// error as a chain of SDK internals.
		rctx, cancel := context.WithTimeout(ctx, credentialsCheckTimeout)
		_, err := cfg.Credentials.Retrieve(rctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: %s (the instance metadata service, the last place the AWS SDK looks, said: %v)", ErrNoCredentials, credentialsHelp, err)
		}
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

// ErrNoCredentials: no AWS credentials are configured anywhere the SDK
// looks, and the instance metadata service has none either.
var ErrNoCredentials = errors.New("no AWS credentials found")

// credentialsHelp lists the ways to provide credentials, in the SDK's order.
const credentialsHelp = "set access_key_id and secret_access_key (or access_key_id_file and secret_access_key_file) in this section; " +
	"or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment; " +
	"or a profile (AWS_PROFILE, ~/.aws/credentials, ~/.aws/config); " +
	"or web identity (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE, which EKS IRSA sets for a ServiceAccount annotated with eks.amazonaws.com/role-arn); " +
	"or a container role (ECS task role, EKS Pod Identity); or an EC2 instance profile"

// credentialsCheckTimeout bounds the look at the instance metadata
// service; its client gives up within about a second where there is none.
const credentialsCheckTimeout = 10 * time.Second

// onlyInstanceMetadata reports whether the SDK resolved its credential
// chain to the instance metadata service alone: nothing in the section,
// the environment or a profile names credentials.
func onlyInstanceMetadata(p aws.CredentialsProvider) bool {
	src, ok := p.(aws.CredentialProviderSource)
	return ok && slices.Equal(src.ProviderSources(), []aws.CredentialSource{aws.CredentialSourceIMDS})
}

// sdkLogger sends the AWS SDK's log lines, which it otherwise prints to
// stderr as "SDK <time> WARN ..." past the configured handler, through
// slog.Default(). "falling back to IMDSv1" is logged at debug: it is how
// every look for an instance role starts off EC2, and what matters
// (ErrNoCredentials, or a request's error) is reported anyway.
type sdkLogger struct{}

func (sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelDebug
	if c == logging.Warn && !strings.HasPrefix(msg, "falling back to IMDSv1") {
		level = slog.LevelWarn
	}
	slog.Default().Log(context.Background(), level, "aws sdk: "+msg)
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
