package source

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/internal/secret"
)

// Config is the `source:` section: how to talk to the Events API. Every point
// the API's documentation leaves open (pagination, parameter and field
// names, date or timestamp bounds, page sizes, rate limits; the "Unknown"
// list of docs/vaultterm-api.md) is a field here, so users adapt to the real
// server by configuration, not by patching code.
type Config struct {
	// BaseURL is the API root, e.g. https://vault.example.com/api.
	BaseURL string `yaml:"base_url"`
	// EventsPath is appended to BaseURL.
	EventsPath string `yaml:"events_path"`
	// Pagination is auto, cursor, page or link.
	Pagination string `yaml:"pagination"`
	// PageSize is sent as LimitParam (cursor/link) or PerPageParam (page).
	PageSize int `yaml:"page_size"`
	// TimeFormat is rfc3339 or date (the server takes whole days only).
	TimeFormat string `yaml:"time_format"`
	// DateToInclusive: in date mode, `to` names the last day included (the
	// simulator's `dates` profile) rather than the first day excluded.
	DateToInclusive bool `yaml:"date_to_inclusive"`
	// BoundaryOverlap widens every request by this much at each end, and
	// the events outside the window are left to the adjacent windows. It
	// makes boundary events safe whether the API's bounds are [from,to) or
	// (from,to] and whatever the precision of its timestamps: keep it at
	// least the API's timestamp precision (default 1s; rfc3339 mode only).
	BoundaryOverlap time.Duration `yaml:"boundary_overlap"`

	Params Params `yaml:"params"`
	Fields Fields `yaml:"fields"`

	Timeout           time.Duration `yaml:"timeout"`              // per request
	MaxPagesPerWindow int           `yaml:"max_pages_per_window"` // loop guard
	MaxPageBytes      int64         `yaml:"max_page_bytes"`       // larger bodies are refused
	RateLimit         float64       `yaml:"rate_limit"`           // requests/s per org; 0 = none
	Retry             Retry         `yaml:"retry"`
	TLS               TLS           `yaml:"tls"`
	Proxy             string        `yaml:"proxy"` // http(s) proxy URL; "" = $HTTPS_PROXY etc.
	UserAgent         string        `yaml:"user_agent"`
}

// DefaultBoundaryOverlap is source.boundary_overlap's default: whole
// seconds cover an API whose timestamps have second precision.
const DefaultBoundaryOverlap = time.Second

// Params names the query parameters and envelope fields of the API.
type Params struct {
	From            string `yaml:"from"`
	To              string `yaml:"to"`
	Limit           string `yaml:"limit"`
	Cursor          string `yaml:"cursor"`
	Page            string `yaml:"page"`
	PerPage         string `yaml:"per_page"`
	NextCursorField string `yaml:"next_cursor_field"` // body field holding the next cursor
	TotalPagesField string `yaml:"total_pages_field"` // body field holding the page count
	HasMoreField    string `yaml:"has_more_field"`    // body field saying whether a later page exists
	ItemsField      string `yaml:"items_field"`       // body field holding the events; "" = auto
}

// Fields maps schema columns to the JSON keys that may carry them, first
// match wins. Empty lists get the built-in aliases (DefaultFields).
type Fields struct {
	ID        []string `yaml:"id"`
	Timestamp []string `yaml:"timestamp"`
	Action    []string `yaml:"action"`
	Title     []string `yaml:"title"`
	Category  []string `yaml:"category"`
	Severity  []string `yaml:"severity"`
	Actor     []string `yaml:"actor"`
	Resource  []string `yaml:"resource"`
	SourceIP  []string `yaml:"source_ip"`
	Detail    []string `yaml:"detail"`
	OrgID     []string `yaml:"org_id"`
}

// DefaultFields are the built-in aliases.
var DefaultFields = Fields{
	ID:        []string{"id", "event_id", "eventId", "uuid"},
	Timestamp: []string{"timestamp", "occurredAt", "occurred_at", "created_at", "createdAt", "time"},
	Action:    []string{"action", "event_type", "eventType", "type"},
	Title:     []string{"title", "summary", "message"},
	Category:  []string{"category"},
	Severity:  []string{"severity", "level"},
	Actor:     []string{"actor", "user", "principal"},
	Resource:  []string{"resource", "target"},
	SourceIP:  []string{"source_ip", "sourceIp", "sourceIP", "ip", "ip_address", "ipAddress"},
	Detail:    []string{"detail", "details", "metadata"},
	OrgID:     []string{"org_id", "orgId", "organization_id"},
}

// Retry bounds retries of retryable failures (network, cut or malformed
// bodies, 429, 5xx). Auth (401/403) and request (400) errors never retry.
type Retry struct {
	MaxAttempts    int           `yaml:"max_attempts"`
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	MaxElapsed     time.Duration `yaml:"max_elapsed"` // per page
}

// TLS configures server verification.
type TLS struct {
	CAFile             string `yaml:"ca_file"`              // PEM bundle added to the system roots
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // warned about loudly at startup
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.EventsPath, "/events/v1")
	def(&c.Pagination, "auto")
	def(&c.TimeFormat, "rfc3339")
	def(&c.Params.From, "from")
	def(&c.Params.To, "to")
	def(&c.Params.Limit, "limit")
	def(&c.Params.Cursor, "cursor")
	def(&c.Params.Page, "page")
	def(&c.Params.PerPage, "per_page")
	def(&c.Params.NextCursorField, "next_cursor")
	def(&c.Params.TotalPagesField, "total_pages")
	def(&c.Params.HasMoreField, "has_more")
	def(&c.UserAgent, "vaultsink")
	if c.PageSize == 0 {
		c.PageSize = 1000
	}
	if c.BoundaryOverlap == 0 {
		c.BoundaryOverlap = DefaultBoundaryOverlap
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.MaxPagesPerWindow == 0 {
		c.MaxPagesPerWindow = 100_000
	}
	if c.MaxPageBytes == 0 {
		c.MaxPageBytes = 64 << 20
	}
	if c.Retry.MaxAttempts == 0 {
		c.Retry.MaxAttempts = 10
	}
	if c.Retry.InitialBackoff == 0 {
		c.Retry.InitialBackoff = 500 * time.Millisecond
	}
	if c.Retry.MaxBackoff == 0 {
		c.Retry.MaxBackoff = 30 * time.Second
	}
	if c.Retry.MaxElapsed == 0 {
		c.Retry.MaxElapsed = 10 * time.Minute
	}
	fill := func(dst *[]string, d []string) {
		if len(*dst) == 0 {
			*dst = d
		}
	}
	f, d := &c.Fields, DefaultFields
	fill(&f.ID, d.ID)
	fill(&f.Timestamp, d.Timestamp)
	fill(&f.Action, d.Action)
	fill(&f.Title, d.Title)
	fill(&f.Category, d.Category)
	fill(&f.Severity, d.Severity)
	fill(&f.Actor, d.Actor)
	fill(&f.Resource, d.Resource)
	fill(&f.SourceIP, d.SourceIP)
	fill(&f.Detail, d.Detail)
	fill(&f.OrgID, d.OrgID)
}

// Validate checks the section; errors name the field under `source.`.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field string, v any, why string) {
		errs = append(errs, fmt.Errorf("source.%s: %v: %s", field, v, why))
	}
	if c.BaseURL == "" {
		bad("base_url", `""`, "required (e.g. https://vault.example.com/api)")
	} else if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("base_url", fmt.Sprintf("%q", c.BaseURL), "must be an absolute http(s) URL")
	}
	switch c.Pagination {
	case "auto", "cursor", "page", "link":
	default:
		bad("pagination", fmt.Sprintf("%q", c.Pagination), "must be one of auto, cursor, page, link")
	}
	switch c.TimeFormat {
	case "rfc3339", "date":
	default:
		bad("time_format", fmt.Sprintf("%q", c.TimeFormat), "must be rfc3339 or date")
	}
	if c.PageSize < 1 {
		bad("page_size", c.PageSize, "must be at least 1")
	}
	if c.BoundaryOverlap < 0 || c.BoundaryOverlap > time.Hour {
		bad("boundary_overlap", c.BoundaryOverlap, "must be from 0s to 1h (at least the precision of the API's timestamps; default 1s)")
	}
	if c.Timeout < 0 {
		bad("timeout", c.Timeout, "must not be negative")
	}
	if c.MaxPagesPerWindow < 1 {
		bad("max_pages_per_window", c.MaxPagesPerWindow, "must be at least 1")
	}
	if c.MaxPageBytes < 1<<10 {
		bad("max_page_bytes", c.MaxPageBytes, "must be at least 1024")
	} else if c.MaxPageBytes > MaxPageBytesLimit {
		bad("max_page_bytes", c.MaxPageBytes, "must be at most 1073741824 (1 GiB: a page's columns must fit Arrow's 32-bit offsets)")
	}
	if c.RateLimit < 0 {
		bad("rate_limit", c.RateLimit, "must not be negative")
	}
	if c.Retry.MaxAttempts < 1 {
		bad("retry.max_attempts", c.Retry.MaxAttempts, "must be at least 1")
	}
	if c.Proxy != "" {
		if u, err := url.Parse(c.Proxy); err != nil || u.Host == "" {
			bad("proxy", fmt.Sprintf("%q", c.Proxy), "must be a URL such as http://proxy:3128")
		}
	}
	if c.TLS.CAFile != "" {
		if _, err := os.Stat(c.TLS.CAFile); err != nil {
			bad("tls.ca_file", fmt.Sprintf("%q", c.TLS.CAFile), "cannot be read: "+err.Error())
		}
	}
	return errors.Join(errs...)
}

// Credential is where an org's token comes from: inline (usually
// `${VAR}`-expanded), an environment variable, or a file. File and env are
// re-read on every Resolve, so a rotated token applies without a restart.
type Credential struct {
	Token     secret.Secret `yaml:"token"`
	TokenEnv  string        `yaml:"token_env"`
	TokenFile string        `yaml:"token_file"`
}

// Resolve returns the current token.
func (c Credential) Resolve() (secret.Secret, error) {
	switch {
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return secret.Secret{}, fmt.Errorf("read token_file %q: %w", c.TokenFile, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return secret.Secret{}, fmt.Errorf("token_file %q is empty", c.TokenFile)
		}
		return secret.New(v), nil
	case c.TokenEnv != "":
		v := strings.TrimSpace(os.Getenv(c.TokenEnv))
		if v == "" {
			return secret.Secret{}, fmt.Errorf("token_env %s is unset or empty", c.TokenEnv)
		}
		return secret.New(v), nil
	case !c.Token.Empty():
		return c.Token, nil
	}
	return secret.Secret{}, errors.New("no token: set one of token, token_env, token_file")
}
