// Package local is the sink that writes one Parquet file per (org, window)
// into a local directory tree, Hive-partitioned as sinks.ObjectKey says.
//
// A unit streams into a hidden temp file beside its final path
// (".events-...parquet.tmp-<pid>-<rand>", invisible to "*.parquet" globs and
// to Hive readers, which skip names starting with "." or "_"), then Commit
// fsyncs it, renames it over the final path and fsyncs the directory. So a
// reader sees the old file or the new one, never a partial one, and a rerun
// of a window atomically replaces its file.
package local

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
)

func init() {
	sinks.Register("local", func() sinks.Config { return &Config{} })
}

// DefaultDirMode is the mode of directories the sink creates. Data files get
// the same mode without execute bits (0640); quarantine files are always
// 0600 because they hold raw, unmapped records.
const DefaultDirMode = "0750"

// Config is the `sink:` section for `type: local`.
type Config struct {
	// Path is the root directory of the Parquet tree (required).
	Path string `yaml:"path"`
	// QuarantinePath is the root of quarantine files; default <path>/_quarantine.
	QuarantinePath string `yaml:"quarantine_path"`
	// DirMode is the octal mode of created directories, e.g. "0750".
	DirMode string `yaml:"dir_mode"`

	pqenc.Options `yaml:",inline"`
}

var _ sinks.Config = (*Config)(nil)

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.QuarantinePath == "" && c.Path != "" {
		c.QuarantinePath = filepath.Join(c.Path, "_quarantine")
	}
	if c.DirMode == "" {
		c.DirMode = DefaultDirMode
	}
	c.Options.SetDefaults()
}

// Validate checks the section; errors name the field and the bad value.
func (c *Config) Validate() error {
	if c.Path == "" {
		return fmt.Errorf("path: required (the root directory of the Parquet files)")
	}
	if _, err := parseDirMode(c.DirMode); err != nil {
		return err
	}
	return c.Options.Validate()
}

func parseDirMode(s string) (fs.FileMode, error) {
	if s == "" {
		s = DefaultDirMode
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("dir_mode: %q is not an octal permission like 0750", s)
	}
	if m&0o700 != 0o700 {
		return 0, fmt.Errorf("dir_mode: %q must give the owner rwx (0700)", s)
	}
	return fs.FileMode(m), nil
}

// Build creates the sink and its root directories.
func (c *Config) Build(ctx context.Context, env sinks.Env) (sinks.Sink, error) {
	return New(*c, env)
}
