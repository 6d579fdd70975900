// Package config loads vaultsink's YAML configuration: strict decoding
// (unknown keys are errors naming the key path and line), ${VAR} expansion
// inside scalar values after parsing, defaults beside the types, and
// validation whose errors name the field path and the bad value, all of them
// at once.
//
// The sink and checkpoint sections are chosen by their `type:` key through
// the sinks and checkpoint registries; a program must import the packages of
// the types it accepts (their init registers them) before calling Load.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/durfmt"
	"github.com/vaultsink/vaultsink/internal/secret"
	"github.com/vaultsink/vaultsink/internal/yamlstrict"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/source"
)

// Defaults of the top-level settings; deploy/config.example.yaml repeats them.
const (
	DefaultWindow        = time.Hour
	DefaultSettle        = 5 * time.Minute
	DefaultSchedule      = "*/5 * * * *"
	DefaultJitter        = 30 * time.Second
	DefaultConcurrency   = 4
	DefaultShutdownGrace = 30 * time.Second
	DefaultLeaseTTL      = 10 * time.Minute
	DefaultListen        = "127.0.0.1:9464"
	DefaultLogLevel      = "info"
	DefaultLogFormat     = "auto"
	DefaultCheckpoint    = "file"
)

// Config is the whole configuration file.
type Config struct {
	Source source.Config `yaml:"source"`
	Orgs   []Org         `yaml:"orgs"`
	// Start is where a new org's checkpoint begins, aligned to Window in UTC.
	Start time.Time `yaml:"start"`
	// Window is the size of a unit of work; it divides 24h.
	Window time.Duration `yaml:"window"`
	// Settle is how long after its end a window is considered closed.
	Settle time.Duration `yaml:"settle"`
	// Lookback is how many committed windows each run pulls again for late events.
	Lookback int `yaml:"lookback"`
	// Schedule is a robfig/cron standard spec (5 fields or a descriptor).
	Schedule string `yaml:"schedule"`
	// Jitter is the largest random per-org delay after a tick.
	Jitter time.Duration `yaml:"jitter"`
	// Concurrency is how many orgs run at once.
	Concurrency int `yaml:"concurrency"`
	// ShutdownGrace is how long the window in flight may take to finish
	// after a stop signal before it is abandoned uncommitted.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	Lease         Lease         `yaml:"lease"`
	Server        Server        `yaml:"server"`
	Log           Log           `yaml:"log"`
	Sink          SinkSection   `yaml:"sink"`
	// Checkpoint defaults to {type: file} with the store's own defaults.
	Checkpoint CheckpointSection `yaml:"checkpoint"`
}

// Org is one organization to mirror, with its token and optional overrides
// of the top-level settings (nil means "use the top-level value").
type Org struct {
	ID                string `yaml:"id"`
	source.Credential `yaml:",inline"`
	Window            *time.Duration `yaml:"window,omitempty"`
	Start             *time.Time     `yaml:"start,omitempty"`
	Lookback          *int           `yaml:"lookback,omitempty"`
	RateLimit         *float64       `yaml:"rate_limit,omitempty"`
	// Sink, when set, is this org's sink. Without a type key its keys are
	// laid over the top-level section, so `sink: {prefix: x}` changes only
	// the prefix; with a type key it is a whole section of its own.
	Sink *SinkSection `yaml:"sink,omitempty"`
}

// Lease guards each org against a second daemon writing it at once.
type Lease struct {
	TTL time.Duration `yaml:"ttl"`
	// Owner is a readable label for this daemon in leases. The owner a
	// lease records is always unique per process: the label, the host,
	// the pid and a random instance id (runner.OwnerID).
	Owner string `yaml:"owner"`
}

// Server is the HTTP listener for /metrics, /healthz and /readyz.
type Server struct {
	// Listen is host:port; "" disables the server.
	Listen string `yaml:"listen"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // auto (JSON unless stderr is a terminal), json, text
}

// SinkSection is a `sink:` section: Type chose the registered sinks.Config
// that the rest of the section was decoded into.
type SinkSection struct {
	Type   string
	Config sinks.Config
}

// CheckpointSection is the `checkpoint:` section, chosen by Type like SinkSection.
type CheckpointSection struct {
	Type   string
	Config checkpoint.Config
}

// SetDefaults fills unset fields. Parse calls it on the empty Config
// before decoding, so a value the file states wins, even an explicit zero
// (jitter: 0s, server.listen: "").
func (c *Config) SetDefaults() {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Settle == 0 {
		c.Settle = DefaultSettle
	}
	if c.Schedule == "" {
		c.Schedule = DefaultSchedule
	}
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	c.Lease.SetDefaults()
	c.Server.SetDefaults()
	c.Log.SetDefaults()
}

// SetDefaults fills unset fields.
func (l *Lease) SetDefaults() {
	if l.TTL == 0 {
		l.TTL = DefaultLeaseTTL
	}
}

// SetDefaults fills unset fields.
func (s *Server) SetDefaults() {
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
}

// SetDefaults fills unset fields.
func (l *Log) SetDefaults() {
	if l.Level == "" {
		l.Level = DefaultLogLevel
	}
	if l.Format == "" {
		l.Format = DefaultLogFormat
	}
}

// Resolved is an org's effective settings: its overrides laid over the
// top-level values. It is the one shape of an org's settings: the runner
// takes it as it is (runner.OrgSpec embeds it, beside the sink built from
// SinkSection).
type Resolved struct {
	Org      source.Org    // id, credential and rate limit: what the API client needs
	Window   time.Duration // divides 24h
	Start    time.Time     // where a new checkpoint begins (aligned to Window)
	Lookback int
	// SinkSection is the org's own section, or &Config.Sink: orgs whose
	// pointers are equal can share one built sink.
	SinkSection *SinkSection
}

// OrgSettings returns the effective settings of org id.
func (c *Config) OrgSettings(id string) (Resolved, bool) {
	for i := range c.Orgs {
		if c.Orgs[i].ID == id {
			return c.resolve(&c.Orgs[i]), true
		}
	}
	return Resolved{}, false
}

func (c *Config) resolve(o *Org) Resolved {
	r := Resolved{
		Org:         source.Org{ID: o.ID, Credential: o.Credential, RateLimit: c.Source.RateLimit},
		Window:      c.Window,
		Start:       c.Start,
		Lookback:    c.Lookback,
		SinkSection: &c.Sink,
	}
	if o.Window != nil {
		r.Window = *o.Window
	}
	if o.Start != nil {
		r.Start = *o.Start
	}
	if o.Lookback != nil {
		r.Lookback = *o.Lookback
	}
	if o.RateLimit != nil {
		r.Org.RateLimit = *o.RateLimit
	}
	if o.Sink != nil {
		r.SinkSection = o.Sink
	}
	return r
}

// orgIDPattern keeps ids safe as a path segment, an S3 key part and a
// Hive partition value.
var orgIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

var allDigits = regexp.MustCompile(`^[0-9]+$`)

var ownerPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Validate checks the whole configuration and returns every problem found,
// joined, each as `field.path: value: why`. Token values are never printed.
func (c *Config) Validate() error {
	v := &validator{}
	v.errs = append(v.errs, c.Source.Validate())
	if c.Source.TimeFormat == "date" && c.Window != 24*time.Hour {
		v.bad("window", c.Window, "must be 24h when source.time_format is date (the API takes whole days)")
	} else {
		v.window("window", c.Window)
	}
	if c.Start.IsZero() {
		v.bad("start", `""`, "required: where a new org's checkpoint begins (RFC3339 or YYYY-MM-DD)")
	} else {
		v.aligned("start", c.Start, c.Window)
	}
	if c.Settle < 0 {
		v.bad("settle", c.Settle, "must not be negative")
	}
	if c.Lookback < 0 {
		v.bad("lookback", c.Lookback, "must not be negative")
	}
	if err := checkSchedule(c.Schedule); err != nil {
		v.bad("schedule", strconv.Quote(c.Schedule), "not a cron schedule (5 fields or a descriptor such as @every 5m): "+err.Error())
	}
	if c.Jitter < 0 {
		v.bad("jitter", c.Jitter, "must not be negative")
	}
	if c.Concurrency < 1 {
		v.bad("concurrency", c.Concurrency, "must be at least 1")
	}
	if c.ShutdownGrace < 0 {
		v.bad("shutdown_grace", c.ShutdownGrace, "must not be negative")
	}
	if c.Lease.TTL <= 0 {
		v.bad("lease.ttl", c.Lease.TTL, "must be positive")
	}
	if c.Lease.Owner != "" && !ownerPattern.MatchString(c.Lease.Owner) {
		v.bad("lease.owner", strconv.Quote(c.Lease.Owner), "must match "+ownerPattern.String()+" (a label; the host, pid and an instance id are added to it)")
	}
	if c.Server.Listen != "" {
		if _, port, err := net.SplitHostPort(c.Server.Listen); err != nil {
			v.bad("server.listen", strconv.Quote(c.Server.Listen), "must be host:port (or \"\" to disable): "+err.Error())
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			v.bad("server.listen", strconv.Quote(c.Server.Listen), "port must be a number from 0 to 65535")
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.bad("log.level", strconv.Quote(c.Log.Level), "must be one of debug, info, warn, error")
	}
	switch c.Log.Format {
	case "auto", "json", "text":
	default:
		v.bad("log.format", strconv.Quote(c.Log.Format), "must be one of auto, json, text")
	}
	v.section("sink", c.Sink.Type, c.Sink.Config)
	v.section("checkpoint", c.Checkpoint.Type, c.Checkpoint.Config)
	c.validateAreas(v)

	if len(c.Orgs) == 0 {
		v.bad("orgs", "[]", "at least one org is required")
	}
	seen := map[string]int{}
	for i := range c.Orgs {
		c.validateOrg(v, i, seen)
	}
	return errors.Join(v.errs...)
}

func (c *Config) validateOrg(v *validator, i int, seen map[string]int) {
	o := &c.Orgs[i]
	p := fmt.Sprintf("orgs[%d]", i)
	switch {
	case o.ID == "":
		v.bad(p+".id", `""`, "required")
	case allDigits.MatchString(o.ID):
		v.bad(p+".id", strconv.Quote(o.ID), "must not be only digits: Hive readers (Spark, DuckDB, Athena) would read the org_id partition as an integer; use a prefix such as org_"+o.ID)
	case !orgIDPattern.MatchString(o.ID):
		v.bad(p+".id", strconv.Quote(o.ID), "must match "+orgIDPattern.String()+" (it becomes a path segment)")
	}
	if j, dup := seen[o.ID]; dup && o.ID != "" {
		v.bad(p+".id", strconv.Quote(o.ID), fmt.Sprintf("duplicate of orgs[%d].id", j))
	} else {
		seen[o.ID] = i
	}
	v.credential(p, o.Credential)
	r := c.resolve(o)
	if o.Window != nil {
		if c.Source.TimeFormat == "date" && r.Window != 24*time.Hour {
			v.bad(p+".window", r.Window, "must be 24h when source.time_format is date (the API takes whole days)")
		} else {
			v.window(p+".window", r.Window)
		}
	}
	// The org's start must align with the org's window even when only one
	// of the two is overridden.
	if (o.Start != nil || o.Window != nil) && !r.Start.IsZero() && validWindow(r.Window) && !aligned(r.Start, r.Window) {
		if o.Start != nil {
			v.bad(p+".start", r.Start.UTC().Format(time.RFC3339), fmt.Sprintf("must be aligned to the window (%s) in UTC, e.g. %s",
				durfmt.String(r.Window), r.Start.UTC().Truncate(r.Window).Format(time.RFC3339)))
		} else {
			v.bad(p+".window", r.Window, fmt.Sprintf("the top-level start %s is not aligned to it in UTC; set %s.start",
				r.Start.UTC().Format(time.RFC3339), p))
		}
	}
	if o.Lookback != nil && *o.Lookback < 0 {
		v.bad(p+".lookback", *o.Lookback, "must not be negative")
	}
	if o.RateLimit != nil && (*o.RateLimit < 0 || math.IsNaN(*o.RateLimit) || math.IsInf(*o.RateLimit, 0)) {
		v.bad(p+".rate_limit", *o.RateLimit, "must be a finite number, not negative (0 = no limit)")
	}
	if o.Sink != nil && o.Sink != &c.Sink {
		v.section(p+".sink", o.Sink.Type, o.Sink.Config)
	}
}

type validator struct{ errs []error }

func (v *validator) bad(field string, val any, why string) {
	if d, ok := val.(time.Duration); ok {
		val = durfmt.String(d)
	}
	v.errs = append(v.errs, fmt.Errorf("%s: %v: %s", field, val, why))
}

func validWindow(w time.Duration) bool {
	return w >= time.Minute && w <= 24*time.Hour && (24*time.Hour)%w == 0
}

func (v *validator) window(field string, w time.Duration) {
	switch {
	case w < time.Minute:
		v.bad(field, w, "must be at least 1m")
	case w > 24*time.Hour:
		v.bad(field, w, "must be at most 24h")
	case (24*time.Hour)%w != 0:
		v.bad(field, w, "must divide 24h evenly (e.g. 5m, 15m, 1h, 6h, 24h)")
	}
}

// aligned reports whether t starts a window of size w in UTC. Truncate
// counts from the zero time, which starts a UTC day, and w divides a day.
func aligned(t time.Time, w time.Duration) bool {
	return t.Truncate(w).Equal(t)
}

func (v *validator) aligned(field string, t time.Time, w time.Duration) {
	if validWindow(w) && !aligned(t, w) {
		v.bad(field, t.UTC().Format(time.RFC3339), fmt.Sprintf("must be aligned to the window (%s) in UTC, e.g. %s",
			durfmt.String(w), t.UTC().Truncate(w).Format(time.RFC3339)))
	}
}

// credential checks that exactly one token source is set and usable now.
// The value itself never reaches an error.
func (v *validator) credential(p string, cr source.Credential) {
	var set []string
	if !cr.Token.Empty() {
		set = append(set, "token")
	}
	if cr.TokenEnv != "" {
		set = append(set, "token_env")
	}
	if cr.TokenFile != "" {
		set = append(set, "token_file")
	}
	switch len(set) {
	case 0:
		v.bad(p+".token", "missing", "set exactly one of token, token_env, token_file")
		return
	case 1:
	default:
		v.bad(p+".token", fmt.Sprintf("%v", set), "set exactly one of token, token_env, token_file")
		return
	}
	switch {
	case cr.TokenEnv != "":
		if !yamlstrict.ValidVarName(cr.TokenEnv) {
			v.bad(p+".token_env", strconv.Quote(cr.TokenEnv), "not an environment variable name")
		} else if _, err := cr.Resolve(); err != nil {
			v.bad(p+".token_env", cr.TokenEnv, "is unset or empty in the environment")
		}
	case cr.TokenFile != "":
		// Only a readability check: the token is read again on every run
		// so that rotation needs no restart.
		if err := checkTokenFile(cr.TokenFile); err != nil {
			v.bad(p+".token_file", strconv.Quote(cr.TokenFile), err.Error())
		}
	}
}

// checkTokenFile reports whether path holds a token. It must be a regular
// file (symlinks followed, as Kubernetes secrets are): /dev/zero or a FIFO
// would hang the check.
func checkTokenFile(path string) error {
	reason := func(err error) error {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot be read: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return reason(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return reason(err)
	}
	if !st.Mode().IsRegular() {
		if st.IsDir() {
			return errors.New("cannot be read: is a directory")
		}
		return errors.New("is not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return reason(err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return errors.New("is empty")
	}
	return nil
}

// section runs a registered section's own Validate, prefixing each error
// with the section's path.
func (v *validator) section(p, typ string, cfg any) {
	if cfg == nil {
		if typ == "" {
			v.bad(p+".type", `""`, "required")
		}
		return
	}
	val, ok := cfg.(sinks.Validator)
	if !ok {
		return
	}
	err := val.Validate()
	if err == nil {
		return
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		v.errs = append(v.errs, fmt.Errorf("%s.%w", p, e))
	}
}

// MarshalYAML writes the section with its type key first, so a dumped
// config reads like the file it came from. Secrets print as <redacted>.
func (s SinkSection) MarshalYAML() (any, error) { return marshalSection(s.Type, s.Config) }

// MarshalYAML writes the section with its type key first.
func (s CheckpointSection) MarshalYAML() (any, error) { return marshalSection(s.Type, s.Config) }

func marshalSection(typ string, cfg any) (any, error) {
	n := &yaml.Node{Kind: yaml.MappingNode}
	n.Content = append(n.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "type"},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: typ})
	if cfg != nil {
		var body yaml.Node
		if err := body.Encode(cfg); err != nil {
			return nil, err
		}
		if body.Kind == yaml.MappingNode {
			n.Content = append(n.Content, body.Content...)
		}
	}
	return n, nil
}

// MarshalYAML leaves out the token fields that are not set (an empty
// Secret would print as <redacted> and read back as a second token source).
func (o Org) MarshalYAML() (any, error) {
	type out struct {
		ID        string         `yaml:"id"`
		Token     *secret.Secret `yaml:"token,omitempty"`
		TokenEnv  string         `yaml:"token_env,omitempty"`
		TokenFile string         `yaml:"token_file,omitempty"`
		Window    *time.Duration `yaml:"window,omitempty"`
		Start     *time.Time     `yaml:"start,omitempty"`
		Lookback  *int           `yaml:"lookback,omitempty"`
		RateLimit *float64       `yaml:"rate_limit,omitempty"`
		Sink      *SinkSection   `yaml:"sink,omitempty"`
	}
	r := out{ID: o.ID, TokenEnv: o.TokenEnv, TokenFile: o.TokenFile, Window: o.Window,
		Start: o.Start, Lookback: o.Lookback, RateLimit: o.RateLimit, Sink: o.Sink}
	if !o.Token.Empty() {
		t := o.Token
		r.Token = &t
	}
	return r, nil
}

// cronFields are the ranges of the five standard fields.
var cronFields = []struct {
	name     string
	min, max int
}{{"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 6}}

// checkSchedule parses spec as the daemon will, and also refuses steps
// larger than their field, which robfig/cron accepts silently (*/61 in
// the minute field fires once an hour, not what anyone meant).
func checkSchedule(spec string) error {
	if _, err := cron.ParseStandard(spec); err != nil {
		return err
	}
	fields := strings.Fields(spec)
	if len(fields) > 0 && (strings.HasPrefix(fields[0], "TZ=") || strings.HasPrefix(fields[0], "CRON_TZ=")) {
		fields = fields[1:]
	}
	if len(fields) != len(cronFields) {
		return nil // a descriptor such as @hourly or @every 5m
	}
	for i, f := range fields {
		for _, part := range strings.Split(f, ",") {
			_, step, ok := strings.Cut(part, "/")
			if !ok {
				continue
			}
			n, err := strconv.Atoi(step)
			r := cronFields[i]
			if err == nil && n > r.max-r.min+1 {
				return fmt.Errorf("step /%d in the %s field exceeds its range %d-%d", n, r.name, r.min, r.max)
			}
		}
	}
	return nil
}

// areas is implemented by sink and checkpoint sections whose types keep
// objects in a namespace they may share (S3 buckets): Areas returns where
// they write, as URLs such as s3://bucket/prefix (see sinks.AreasOverlap).
type areas interface{ Areas() []string }

// validateAreas keeps checkpoints out of every sink's areas (the S3 sink's
// data and quarantine prefixes): a Hive reader scanning the table prefix
// must never see state.
func (c *Config) validateAreas(v *validator) {
	cp, ok := c.Checkpoint.Config.(areas)
	if !ok {
		return
	}
	check := func(field string, sec *SinkSection) {
		sa, ok := sec.Config.(areas)
		if !ok {
			return
		}
		for _, s := range sa.Areas() {
			for _, a := range cp.Areas() {
				if sinks.AreasOverlap(a, s) {
					_, cpPrefix := sinks.SplitArea(a)
					_, prefix := sinks.SplitArea(s)
					v.bad("checkpoint.prefix", strconv.Quote(cpPrefix), "overlaps "+field+" prefix "+strconv.Quote(prefix)+" in the same bucket: keep checkpoints outside the data")
					return
				}
			}
		}
	}
	check("sink", &c.Sink)
	for i := range c.Orgs {
		if c.Orgs[i].Sink != nil {
			check(fmt.Sprintf("orgs[%d].sink", i), c.Orgs[i].Sink)
		}
	}
}
