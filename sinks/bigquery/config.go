package bigquery

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
)

func init() {
	sinks.Register("bigquery", func() sinks.Config { return &Config{} })
}

// Defaults.
const (
	DefaultTable = "vaultterm_events"
	// DefaultMaxBatch is how many windows of one org the planner gathers per
	// CommitBatch: a day of hourly windows, so catching up a day costs one
	// load and one DML instead of 24 (see the quota arithmetic in doc.go).
	DefaultMaxBatch = 24
	// DefaultGroupDelay is how long a commit waits for commits of other orgs
	// to share its load job and DML statement.
	DefaultGroupDelay = 2 * time.Second
	// DefaultMaxGroupSlices bounds one commit transaction: at most 8 query
	// parameters per slice (its window, its org's fence) plus 4 stays below
	// BigQuery's 10,000 parameters, and the script below 1 MB of SQL text.
	DefaultMaxGroupSlices = 1000
	// MaxGroupSlices is the most max_group_slices may be:
	// (10,000 - 4) / 8 parameters, rounded down.
	MaxGroupSlices = (MaxQueryParameters - paramsFixed) / paramsPerSlice
	// DefaultCommitTimeout bounds one commit group: its loads, its count
	// query and its transaction, retries and conflict pauses included.
	DefaultCommitTimeout = 10 * time.Minute
	// maxTableBytes is BigQuery's limit on a table name, in UTF-8 bytes.
	maxTableBytes = 1024
)

// Config is the `sink:` section for type "bigquery".
type Config struct {
	Project string `yaml:"project"`
	Dataset string `yaml:"dataset"`
	Table   string `yaml:"table"` // default vaultterm_events
	// Location is where the datasets are and every job runs: e.g. US, EU,
	// europe-west1. Required when vaultsink creates a dataset; when empty,
	// it is read from the existing dataset.
	Location        string `yaml:"location"`
	CredentialsFile string `yaml:"credentials_file"` // service-account JSON; empty = Application Default Credentials
	// Endpoint overrides the API root (tests, emulators, private endpoints).
	Endpoint string `yaml:"endpoint"`
	// WithoutAuthentication sends no credentials: only for a local stand-in.
	WithoutAuthentication bool   `yaml:"without_authentication"`
	StagingDataset        string `yaml:"staging_dataset"` // default = dataset
	// PartitionExpiration drops daily partitions older than this (0 = keep).
	PartitionExpiration time.Duration     `yaml:"partition_expiration"`
	Description         string            `yaml:"description"`
	Labels              map[string]string `yaml:"labels"`
	// MaxBatch is the number of windows of one org committed by one load and
	// one DML when the planner catches up.
	MaxBatch int `yaml:"max_batch"`
	// GroupDelay is how long a commit waits to be merged with commits of other
	// orgs; negative disables the wait (commits still merge while one runs).
	GroupDelay time.Duration `yaml:"group_delay"`
	// MaxGroupSlices caps the (org, window range) slices in one statement.
	MaxGroupSlices int `yaml:"max_group_slices"`
	// CommitTimeout bounds a commit group (loads, count, transaction,
	// retries); each job also carries the time left as its BigQuery
	// JobTimeout, so BigQuery cancels a job that outlives it.
	CommitTimeout time.Duration `yaml:"commit_timeout"`
	// TempDir holds the units' Parquet files until they are loaded.
	TempDir string `yaml:"temp_dir"`

	pqenc.Options `yaml:",inline"`
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.Table == "" {
		c.Table = DefaultTable
	}
	if c.StagingDataset == "" {
		c.StagingDataset = c.Dataset
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = DefaultMaxBatch
	}
	if c.GroupDelay == 0 {
		c.GroupDelay = DefaultGroupDelay
	}
	if c.MaxGroupSlices == 0 {
		c.MaxGroupSlices = DefaultMaxGroupSlices
	}
	if c.CommitTimeout == 0 {
		c.CommitTimeout = DefaultCommitTimeout
	}
	c.Options.SetDefaults()
}

// The lengths are checked apart (fits): written into the patterns as
// {1,1000} over Unicode classes they compiled into a ~5 MB program, built
// at every start and kept live, so every garbage collection of a sync
// scanned it (heap profile of vaultsink sync).
var (
	// A project id is 6-30 lowercase letters, digits and hyphens, starting
	// with a letter and not ending with a hyphen; a domain-scoped project
	// puts a domain and a colon before it (example.com:my-project).
	reProject  = regexp.MustCompile(`^(?:([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*):)?([a-z][a-z0-9-]{4,28}[a-z0-9])$`)
	reLocation = regexp.MustCompile(`^[A-Za-z]+(?:-[a-z]+[0-9]+)?$`)
	reDataset  = regexp.MustCompile(`^[A-Za-z0-9_]+$`)                        // 1-1000
	reTable    = regexp.MustCompile(`^[\p{L}\p{M}\p{N}\p{Pc}\p{Pd} ]+$`)      // 1-1000
	reLabel    = regexp.MustCompile(`^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]*$`) // 1-63
	reLabelV   = regexp.MustCompile(`^[\p{Ll}\p{Lo}\p{N}_-]*$`)               // 0-63
)

// projectRule is what reProject accepts, in words.
const projectRule = "6-30 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen, " +
	"optionally after a domain and a colon (example.com:my-project)"

// projectProblem names the first part of projectRule that p breaks.
func projectProblem(p string) string {
	id := p
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		id = p[i+1:]
		if d := p[:i]; !reProject.MatchString(d+":aaaaaa") || len(d) > 253 {
			return fmt.Sprintf("%q before the colon is not a domain name", truncate(d, 40))
		}
	}
	n := utf8.RuneCountInString(id)
	switch {
	case n == 0:
		return "it is empty"
	case n < 6:
		return fmt.Sprintf("%q is too short (%d of at least 6 characters)", id, n)
	case n > 30:
		return fmt.Sprintf("it is too long (%d of at most 30 characters)", n)
	}
	for _, r := range id {
		switch {
		case r >= 'A' && r <= 'Z':
			return "it has upper-case letters (a project's id, not its display name, goes here)"
		case !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'):
			return fmt.Sprintf("it holds %q, which is not a lowercase letter, digit or hyphen", r)
		}
	}
	switch {
	case id[0] < 'a' || id[0] > 'z':
		return fmt.Sprintf("it starts with %q, not a letter (a project number is not the project id)", id[0])
	case id[len(id)-1] == '-':
		return "it ends with a hyphen"
	}
	return "it is too long with its domain"
}

// fits reports whether s matches re and has at most max characters.
func fits(re *regexp.Regexp, s string, max int) bool {
	return utf8.RuneCountInString(s) <= max && re.MatchString(s)
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}

// Validate checks the section; errors name the field and the bad value.
func (c *Config) Validate() error {
	if c.Project == "" {
		return fmt.Errorf("project: required (the Google Cloud project id)")
	}
	if !reProject.MatchString(c.Project) || len(c.Project) > 30+1+253 {
		return fmt.Errorf("project: %q is not a valid project id: %s (a project id is %s)", truncate(c.Project, 80), projectProblem(c.Project), projectRule)
	}
	if c.Location != "" && !reLocation.MatchString(c.Location) {
		return fmt.Errorf("location: %q is not a BigQuery location (e.g. US, EU, europe-west1)", c.Location)
	}
	if c.Dataset == "" {
		return fmt.Errorf("dataset: required")
	}
	if !fits(reDataset, c.Dataset, 1000) {
		return fmt.Errorf("dataset: %q may contain only letters, digits and underscores", c.Dataset)
	}
	if !fits(reDataset, c.StagingDataset, 1000) {
		return fmt.Errorf("staging_dataset: %q may contain only letters, digits and underscores", c.StagingDataset)
	}
	if !fits(reTable, c.Table, maxTableBytes) {
		return fmt.Errorf("table: %q is not a valid table name (letters, marks, digits, connectors, dashes and spaces)", c.Table)
	}
	// The table's companions (<table>_quarantine, <table>_fence) must fit
	// BigQuery's 1,024 bytes too; the limit counts UTF-8 bytes, not letters.
	if n := len(c.Table) + len("_quarantine"); n > maxTableBytes {
		return fmt.Errorf("table: %q is %d bytes in UTF-8; with the suffix _quarantine it must fit BigQuery's %d bytes (at most %d)",
			truncate(c.Table, 40), len(c.Table), maxTableBytes, maxTableBytes-len("_quarantine"))
	}
	if c.PartitionExpiration < 0 || (c.PartitionExpiration > 0 && c.PartitionExpiration < 24*time.Hour) {
		return fmt.Errorf("partition_expiration: %s must be 0 (keep) or at least 24h", c.PartitionExpiration)
	}
	if len(c.Labels) > 64 {
		return fmt.Errorf("labels: %d labels, at most 64", len(c.Labels))
	}
	for k, v := range c.Labels {
		if !fits(reLabel, k, 63) {
			return fmt.Errorf("labels: key %q must start with a lowercase letter and hold only lowercase letters, digits, _ and - (max 63)", k)
		}
		if !fits(reLabelV, v, 63) {
			return fmt.Errorf("labels.%s: value %q may hold only lowercase letters, digits, _ and - (max 63)", k, v)
		}
	}
	if c.MaxBatch < 1 || c.MaxBatch > 1000 {
		return fmt.Errorf("max_batch: %d is out of range (1-1000)", c.MaxBatch)
	}
	if c.MaxGroupSlices < 1 || c.MaxGroupSlices > MaxGroupSlices {
		return fmt.Errorf("max_group_slices: %d is out of range (1-%d: a commit uses up to %d query parameters per slice plus %d, BigQuery allows %d)",
			c.MaxGroupSlices, MaxGroupSlices, paramsPerSlice, paramsFixed, MaxQueryParameters)
	}
	if c.CommitTimeout < 10*time.Second {
		return fmt.Errorf("commit_timeout: %s is shorter than 10s", c.CommitTimeout)
	}
	if c.GroupDelay > time.Minute {
		return fmt.Errorf("group_delay: %s is longer than 1m", c.GroupDelay)
	}
	if c.WithoutAuthentication && c.Endpoint == "" {
		return fmt.Errorf("without_authentication: only allowed with an endpoint (a local stand-in or emulator)")
	}
	if c.WithoutAuthentication && c.CredentialsFile != "" {
		return fmt.Errorf("without_authentication: conflicts with credentials_file %q", c.CredentialsFile)
	}
	return c.Options.Validate()
}

// Build connects to BigQuery. The target table is checked and created on the
// first commit, so a daemon starts even while BigQuery is unreachable.
func (c *Config) Build(ctx context.Context, env sinks.Env) (sinks.Sink, error) {
	cc := *c
	cc.SetDefaults()
	if err := cc.Validate(); err != nil {
		return nil, fmt.Errorf("bigquery sink: %w", err)
	}
	return New(ctx, cc, env)
}
