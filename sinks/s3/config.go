package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
)

// Part sizes: S3 refuses parts under 5 MiB except the last one.
const (
	MinPartSize     = 5 << 20
	DefaultPartSize = 8 << 20
)

// Config is the `sink:` section of type s3.
type Config struct {
	s3client.ClientConfig `yaml:",inline"`
	Bucket                string `yaml:"bucket"`
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
	if sinks.Overlaps(c.Prefix, c.QuarantinePrefix) {
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

// Areas is where the sink writes: its table and quarantine prefixes, as
// s3://bucket/prefix. The config loader keeps the S3 checkpoint store's
// area out of them, so readers of the table never scan state. An unset
// prefix is left out: Validate reports it.
func (c *Config) Areas() []string {
	var areas []string
	for _, p := range []string{c.Prefix, c.QuarantinePrefix} {
		if p != "" {
			areas = append(areas, "s3://"+c.Bucket+"/"+p)
		}
	}
	return areas
}

// Build creates the sink.
func (c *Config) Build(ctx context.Context, env sinks.Env) (sinks.Sink, error) {
	return New(ctx, *c, env)
}
