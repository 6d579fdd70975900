package config

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/sinks"
)

// Test-only section types, registered under names no real package uses so
// that they can live beside the real ones in one test binary.

type testSinkConfig struct {
	Path        string `yaml:"path"`
	Prefix      string `yaml:"prefix"`
	Compression string `yaml:"compression"`
	Tuning      struct {
		RowGroupRows int `yaml:"row_group_rows"`
	} `yaml:"tuning"`
}

func (c *testSinkConfig) Build(context.Context, sinks.Env) (sinks.Sink, error) {
	return nil, errors.New("testsink cannot be built")
}

func (c *testSinkConfig) SetDefaults() {
	if c.Compression == "" {
		c.Compression = "zstd"
	}
	if c.Tuning.RowGroupRows == 0 {
		c.Tuning.RowGroupRows = 1000
	}
}

func (c *testSinkConfig) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New(`path: "": required`))
	}
	if c.Compression != "zstd" && c.Compression != "none" {
		errs = append(errs, fmt.Errorf("compression: %q: must be zstd or none", c.Compression))
	}
	return errors.Join(errs...)
}

type testStoreConfig struct {
	Path string `yaml:"path"`
}

func (c *testStoreConfig) Build(context.Context, *slog.Logger) (checkpoint.Store, error) {
	return nil, errors.New("teststore cannot be built")
}

func (c *testStoreConfig) Validate() error {
	if c.Path == "" {
		return errors.New(`path: "": required`)
	}
	return nil
}

func init() {
	sinks.Register("testsink", func() sinks.Config { return &testSinkConfig{} })
	checkpoint.Register("teststore", func() checkpoint.Config { return &testStoreConfig{} })
}

func checkpointTypes() []string { return checkpoint.Types() }
