package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/internal/secret"
)

const (
	envToken  = "vt_secret_FROM_ENV"
	fileToken = "vt_secret_FROM_FILE"
)

// testEnv sets the variables the testdata files use and makes sure the
// ones they expect unset are.
func testEnv(t testing.TB) {
	t.Setenv("VT_TEST_TOKEN", envToken)
	t.Setenv("VT_TEST_EMPTY", "")
	for _, k := range []string{"VT_TEST_BASE", "VAULTSINK_TEST_UNSET_URL", "VAULTSINK_TEST_UNSET_TOKEN", "VAULTSINK_TEST_UNSET_ENV"} {
		t.Setenv(k, "x")
		os.Unsetenv(k)
	}
}

var (
	wantLine    = regexp.MustCompile(`(?m)^# want: (.+)$`)
	secretValue = regexp.MustCompile(`vt_secret_[A-Za-z0-9_]+`)
)

func TestBadConfigs(t *testing.T) {
	testEnv(t)
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 17 {
		t.Fatalf("only %d bad configs in testdata", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".bad.yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wants := wantLine.FindAllStringSubmatch(string(data), -1)
			if len(wants) == 0 {
				t.Fatal("no '# want: ' line")
			}
			c, err := Load(f)
			if err == nil {
				t.Fatalf("loaded without error: %+v", c)
			}
			msg := err.Error()
			for _, w := range wants {
				if !strings.Contains(msg, w[1]) {
					t.Errorf("error does not contain %q:\n%s", w[1], msg)
				}
			}
			secrets := append(secretValue.FindAllString(string(data), -1), envToken, fileToken)
			for _, s := range secrets {
				if strings.Contains(msg, s) {
					t.Errorf("error leaks token %q:\n%s", s, msg)
				}
			}
			if !strings.HasPrefix(msg, f+":") {
				t.Errorf("error does not start with the file name %s:\n%s", f, msg)
			}
		})
	}
}

func TestGoodConfigsRoundTrip(t *testing.T) {
	testEnv(t)
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no good configs")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".good.yaml"), func(t *testing.T) {
			c1, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := yaml.Marshal(c1)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range []string{envToken, fileToken, "pa$word"} {
				if strings.Contains(string(out), s) {
					t.Fatalf("marshalled config leaks %q:\n%s", s, out)
				}
			}
			c2, err := Parse(out, "dump")
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			// Inline tokens come back as <redacted>; everything else must
			// be identical.
			for i := range c2.Orgs {
				if c1.Orgs[i].Token.Empty() {
					continue
				}
				if got := c2.Orgs[i].Token.Reveal(); got != "<redacted>" {
					t.Errorf("orgs[%d].token dumped as %q", i, got)
				}
				c2.Orgs[i].Token = c1.Orgs[i].Token
			}
			if !reflect.DeepEqual(c1, c2) {
				out2, _ := yaml.Marshal(c2)
				t.Fatalf("round trip differs:\n%s\n---\n%s", out, out2)
			}
		})
	}
}

func TestMinimalDefaults(t *testing.T) {
	testEnv(t)
	c, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"start", c.Start, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)},
		{"window", c.Window, time.Hour},
		{"settle", c.Settle, 5 * time.Minute},
		{"lookback", c.Lookback, 0},
		{"schedule", c.Schedule, "*/5 * * * *"},
		{"jitter", c.Jitter, 30 * time.Second},
		{"concurrency", c.Concurrency, 4},
		{"shutdown_grace", c.ShutdownGrace, 30 * time.Second},
		{"lease.ttl", c.Lease.TTL, 10 * time.Minute},
		{"lease.owner", c.Lease.Owner, ""}, // a label; runner.OwnerID adds host, pid and an instance id
		{"server.listen", c.Server.Listen, "127.0.0.1:9464"},
		{"log", c.Log, Log{Level: "info", Format: "auto"}},
		{"source.events_path", c.Source.EventsPath, "/events/v1"},
		{"sink.type", c.Sink.Type, "testsink"},
		{"sink config", c.Sink.Config, &testSinkConfig{Path: "./out", Compression: "zstd", Tuning: struct {
			RowGroupRows int `yaml:"row_group_rows"`
		}{1000}}},
		{"checkpoint", c.Checkpoint.Config, &testStoreConfig{Path: "./state"}},
		{"token", c.Orgs[0].Token.Reveal(), envToken},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

func TestOrgSettings(t *testing.T) {
	testEnv(t)
	c, err := Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Explicit zeros win over defaults.
	if c.Jitter != 0 || c.Settle != 0 || c.Server.Listen != "" {
		t.Errorf("explicit zeros lost: jitter %v settle %v listen %q", c.Jitter, c.Settle, c.Server.Listen)
	}
	if c.Source.BaseURL != "https://vault.example.com/api" {
		t.Errorf("${VAR:-default}: base_url = %q", c.Source.BaseURL)
	}
	if c.Source.Params.From != "since" || c.Source.Params.Limit != "limit" {
		t.Errorf("params = %+v", c.Source.Params)
	}
	if _, ok := c.OrgSettings("nobody"); ok {
		t.Error("OrgSettings found an org that does not exist")
	}
	type want struct {
		window     time.Duration
		start      time.Time
		lookback   int
		rate       float64
		sink       *testSinkConfig
		sharedSink bool
		token      string
	}
	june, may := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	top := c.Sink.Config.(*testSinkConfig)
	tests := map[string]want{
		"org_1":   {30 * time.Minute, june, 1, 2.5, top, true, envToken},
		"org-two": {6 * time.Hour, may, 3, 0.5, &testSinkConfig{Path: "./out", Prefix: "two", Compression: "zstd", Tuning: top.Tuning}, false, envToken},
		"org.three": {15 * time.Minute, june, 2, 2.5, &testSinkConfig{Path: "/elsewhere", Compression: "none", Tuning: struct {
			RowGroupRows int `yaml:"row_group_rows"`
		}{1000}}, false, fileToken},
		"org_4": {30 * time.Minute, june, 1, 2.5, top, true, "pa$word"},
	}
	for id, w := range tests {
		t.Run(id, func(t *testing.T) {
			r, ok := c.OrgSettings(id)
			if !ok {
				t.Fatal("not found")
			}
			if r.Window != w.window || !r.Start.Equal(w.start) || r.Lookback != w.lookback || r.Org.RateLimit != w.rate {
				t.Errorf("got window %v start %v lookback %d rate %v", r.Window, r.Start, r.Lookback, r.Org.RateLimit)
			}
			if !reflect.DeepEqual(r.SinkSection.Config, w.sink) {
				t.Errorf("sink = %+v, want %+v", r.SinkSection.Config, w.sink)
			}
			if (r.SinkSection == &c.Sink) != w.sharedSink {
				t.Errorf("shares the top-level sink: %v, want %v", r.SinkSection == &c.Sink, w.sharedSink)
			}
			tok, err := r.Org.Credential.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			if tok.Reveal() != w.token {
				t.Errorf("token = %q, want %q", tok.Reveal(), w.token)
			}
		})
	}
	// The top-level sink's keys were not changed by an org laid over it.
	if top.Prefix != "audit" || top.Tuning.RowGroupRows != 42 {
		t.Errorf("top-level sink changed: %+v", top)
	}
}

// A value from the environment is only ever a scalar: YAML inside it is text.
func TestExpansionCannotInjectStructure(t *testing.T) {
	testEnv(t)
	t.Setenv("VT_TEST_INJECT", "x\nwindow: 7h\nfoo: {bar: 1}")
	data := strings.Replace(mustRead(t, "testdata/minimal.good.yaml"), "./out", "${VT_TEST_INJECT}", 1)
	c, err := Parse([]byte(data), "inject.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Sink.Config.(*testSinkConfig).Path; got != "x\nwindow: 7h\nfoo: {bar: 1}" {
		t.Errorf("path = %q", got)
	}
	if c.Window != time.Hour {
		t.Errorf("window = %v", c.Window)
	}
}

func TestValidationCollectsAllErrors(t *testing.T) {
	testEnv(t)
	_, err := Load("testdata/many-errors.bad.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("not a joined error: %T", err)
	}
	if n := len(j.Unwrap()); n < 5 {
		t.Fatalf("%d errors, want at least 5:\n%v", n, err)
	}
}

// TestCheckpointDefaultsToFile: no checkpoint section, an empty one and
// one without a type key all mean the file store, as the example says.
func TestCheckpointDefaultsToFile(t *testing.T) {
	testEnv(t)
	data := mustRead(t, "testdata/minimal.good.yaml")
	data = data[:strings.Index(data, "checkpoint:")]
	for name, section := range map[string]string{
		"none":    "",
		"empty":   "checkpoint:\n",
		"no type": "checkpoint:\n  path: ./state-here\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(data+section), "nocheckpoint.yaml")
			if !contains(checkpointTypes(), DefaultCheckpoint) {
				if err == nil || !strings.Contains(err.Error(), `checkpoint.type: "file" (the default)`) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Checkpoint.Type != DefaultCheckpoint {
				t.Errorf("checkpoint type = %q", c.Checkpoint.Type)
			}
			if strings.Contains(section, "path:") {
				if fc, ok := c.Checkpoint.Config.(*checkpoint.FileConfig); !ok || fc.Path != "./state-here" {
					t.Errorf("checkpoint config = %#v, want the file store at ./state-here", c.Checkpoint.Config)
				}
			}
		})
	}
}

func TestTokenNeverInDump(t *testing.T) {
	testEnv(t)
	c, err := Load("testdata/minimal.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c.Orgs[0].Token = secret.New(envToken)
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), envToken) || !strings.Contains(string(out), "token: <redacted>") {
		t.Fatalf("dump:\n%s", out)
	}
}

func mustRead(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
