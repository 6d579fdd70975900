// Package deploy_test checks the deployment files in deploy/ against the code
// they deploy: the Dockerfile's build command is run as written and its
// binary checked, the systemd units are verified by systemd-analyze (when
// installed), the Kubernetes manifests are decoded strictly into the
// k8s.io/api types, and every metric the Grafana dashboard queries is looked
// up in a /metrics page scraped from a real daemon syncing the simulator.
package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/config"
	"github.com/vaultsink/vaultsink/sinks/local"
)

// binVersion is baked into the test build through the Dockerfile's
// VERSION build arg, so `version` proves the -X ldflag took effect.
const binVersion = "deploytest-1.2.3"

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildLog  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// repoRoot is the module root: go test runs in deploy/.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repo root %s: %v", root, err)
	}
	return root
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dockerInstr is one Dockerfile instruction with continuations joined.
type dockerInstr struct {
	Line int
	Cmd  string // upper case
	Args string
}

func parseDockerfile(src []byte) []dockerInstr {
	var out []dockerInstr
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(bytes.NewReader(src))
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(line, "#") {
			continue // comments inside a continued instruction
		}
		if cur.Len() == 0 {
			start = n
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`))
			cur.WriteString(" ")
			continue
		}
		cur.WriteString(line)
		full := cur.String()
		cur.Reset()
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, dockerInstr{Line: start, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args)})
	}
	return out
}

// shellWords splits a POSIX shell command line with single and double
// quotes and expands ${VAR} and $VAR from vars (the Dockerfile's ARGs).
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	expand := func(i int) (int, error) {
		// s[i] == '$'
		if i+1 < len(s) && s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return 0, fmt.Errorf("unterminated ${ in %q", s)
			}
			name := s[i+2 : i+end]
			v, ok := vars[name]
			if !ok {
				return 0, fmt.Errorf("${%s} is not a declared ARG", name)
			}
			cur.WriteString(v)
			return i + end + 1, nil
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		name := s[i+1 : j]
		v, ok := vars[name]
		if !ok {
			return 0, fmt.Errorf("$%s is not a declared ARG", name)
		}
		cur.WriteString(v)
		return j, nil
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for {
				if i >= len(s) {
					return nil, fmt.Errorf("unterminated \" in %q", s)
				}
				if s[i] == '"' {
					i++
					break
				}
				if s[i] == '$' {
					var err error
					if i, err = expand(i); err != nil {
						return nil, err
					}
					continue
				}
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				cur.WriteByte(s[i])
				i++
			}
		case c == '$':
			inWord = true
			var err error
			if i, err = expand(i); err != nil {
				return nil, err
			}
		case strings.ContainsRune(";&|<>`", rune(c)):
			return nil, fmt.Errorf("shell operator %q: the build RUN must be one plain command", c)
		default:
			inWord = true
			cur.WriteByte(c)
			i++
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var envAssign = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// dockerBuildCommand returns the env assignments and argv of the build
// stage's `go build` RUN line, with ARGs expanded (VERSION=binVersion).
func dockerBuildCommand(instrs []dockerInstr) (env, argv []string, outPath string, err error) {
	vars := map[string]string{}
	var run string
	for _, in := range instrs {
		switch in.Cmd {
		case "FROM":
			if run != "" {
				// Only the first (build) stage.
				break
			}
		case "ARG":
			name, def, _ := strings.Cut(in.Args, "=")
			vars[name] = def
		case "RUN":
			if strings.Contains(in.Args, "go build") {
				if run != "" {
					return nil, nil, "", fmt.Errorf("more than one RUN with go build")
				}
				run = in.Args
			}
		}
	}
	if run == "" {
		return nil, nil, "", fmt.Errorf("no RUN line with go build")
	}
	vars["VERSION"] = binVersion
	words, err := shellWords(run, vars)
	if err != nil {
		return nil, nil, "", err
	}
	i := 0
	for i < len(words) && envAssign.MatchString(words[i]) {
		env = append(env, words[i])
		i++
	}
	argv = words[i:]
	for j := 0; j+1 < len(argv); j++ {
		if argv[j] == "-o" {
			outPath = argv[j+1]
		}
	}
	if len(argv) < 2 || argv[0] != "go" || argv[1] != "build" || outPath == "" {
		return nil, nil, "", fmt.Errorf("RUN %q: want `[VAR=value ...] go build ... -o PATH ./cmd/vaultsink`", run)
	}
	return env, argv, outPath, nil
}

// vaultsinkBinary builds cmd/vaultsink once per test binary with the
// Dockerfile's exact build command, -o redirected to a temp dir. Every test
// that runs the binary uses this build, so what they check is what the image
// ships.
func vaultsinkBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root := repoRoot(t)
		src, err := os.ReadFile(filepath.Join(root, "deploy/container/Dockerfile"))
		if err != nil {
			buildErr = err
			return
		}
		env, argv, outPath, err := dockerBuildCommand(parseDockerfile(src))
		if err != nil {
			buildErr = err
			return
		}
		buildDir, err = os.MkdirTemp("", "vaultsink-deploy-test-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(buildDir, filepath.Base(outPath))
		for i := range argv {
			if argv[i] == outPath {
				argv[i] = buildBin
			}
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, argv[1:]...)
		cmd.Dir = root // the Dockerfile's WORKDIR holds the whole repository
		// The Dockerfile's assignments come last so they win over the
		// caller's environment (the Makefile exports CGO_ENABLED=1).
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		buildLog = fmt.Sprintf("%s %s\n%s", strings.Join(env, " "), strings.Join(argv, " "), out)
		if err != nil {
			buildErr = fmt.Errorf("docker build stage command failed: %w\n%s", err, buildLog)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// runBin runs the built binary with a timeout and returns its combined output.
func runBin(t testing.TB, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, vaultsinkBinary(t), args...).CombinedOutput()
	return string(out), err
}

// checkConfigFile runs `vaultsink check-config` on a copy of a shipped
// config whose token_file paths under secretDir are pointed at temp files
// (the config loader checks that token files are readable).
func checkConfigFile(t *testing.T, yamlText, secretDir string) {
	t.Helper()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "secrets")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`token_file:\s*(\S+)`)
	found := 0
	for _, m := range re.FindAllStringSubmatch(yamlText, -1) {
		p := m[1]
		if !strings.HasPrefix(p, secretDir+"/") {
			t.Errorf("token_file %s is not under the secret mount %s", p, secretDir)
			continue
		}
		found++
		if err := os.WriteFile(filepath.Join(tokens, filepath.Base(p)), []byte("test-token\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if found == 0 {
		t.Errorf("config has no token_file under %s", secretDir)
	}
	cfgPath := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(strings.ReplaceAll(yamlText, secretDir+"/", tokens+"/")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runBin(t, "check-config", "--config", cfgPath)
	if err != nil {
		t.Errorf("vaultsink check-config: %v\n%s", err, out)
	}
}

func TestDockerfile(t *testing.T) {
	src := readFile(t, "deploy/container/Dockerfile")
	instrs := parseDockerfile(src)

	var stages [][]dockerInstr
	for _, in := range instrs {
		if in.Cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.Cmd != "ARG" {
				t.Fatalf("line %d: %s before the first FROM", in.Line, in.Cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}

	t.Run("structure", func(t *testing.T) {
		if len(stages) < 2 {
			t.Fatalf("%d stages: want a multi-stage build", len(stages))
		}
		// The image builds with the Go release go.mod's toolchain line names
		// (and the Makefile's GOTOOLCHAIN, test/security checks that).
		m := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindSubmatch(readFile(t, "go.mod"))
		if m == nil {
			t.Fatal("go.mod has no toolchain line")
		}
		if got, want := stages[0][0].Args, "golang:"+string(m[1])+" AS build"; got != want {
			t.Errorf("build stage FROM %q, want %s (go.mod's toolchain)", got, want)
		}
		final := stages[len(stages)-1]
		if got := final[0].Args; got != "gcr.io/distroless/static-debian12:nonroot" {
			t.Errorf("final FROM %q, want gcr.io/distroless/static-debian12:nonroot", got)
		}
		last := map[string]dockerInstr{}
		for _, in := range final {
			last[in.Cmd] = in
			if in.Cmd == "RUN" {
				t.Errorf("line %d: RUN in the final stage (distroless has no shell)", in.Line)
			}
		}
		user, ok := last["USER"]
		switch name, _, _ := strings.Cut(user.Args, ":"); {
		case !ok:
			t.Error("final stage has no USER")
		case name == "" || name == "0" || name == "root":
			t.Errorf("line %d: USER %s runs as root", user.Line, user.Args)
		case name != "65532" && name != "nonroot":
			t.Errorf("line %d: USER %s, want 65532 (distroless nonroot)", user.Line, user.Args)
		}
		execForm := func(cmd string, want []string) {
			in, ok := last[cmd]
			if !ok {
				t.Errorf("final stage has no %s", cmd)
				return
			}
			var got []string
			if err := json.Unmarshal([]byte(in.Args), &got); err != nil {
				t.Errorf("line %d: %s %s is not the exec (JSON) form: %v", in.Line, cmd, in.Args, err)
				return
			}
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") {
				t.Errorf("line %d: %s %q, want %q", in.Line, cmd, got, want)
			}
		}
		execForm("ENTRYPOINT", []string{"vaultsink"})
		execForm("CMD", []string{"run", "--config", "/etc/vaultsink/config.yaml"})
		if got := last["EXPOSE"].Args; got != "9464" && got != "9464/tcp" {
			t.Errorf("EXPOSE %q, want 9464", got)
		}

		_, _, outPath, err := dockerBuildCommand(instrs)
		if err != nil {
			t.Fatal(err)
		}
		copied := false
		for _, in := range final {
			if in.Cmd != "COPY" {
				continue
			}
			f := strings.Fields(in.Args)
			if len(f) == 3 && f[0] == "--from=build" && f[1] == outPath {
				copied = true
				// ENTRYPOINT ["vaultsink"] is looked up in distroless's PATH.
				if f[2] != "/usr/local/bin/vaultsink" && f[2] != "/usr/local/bin/" {
					t.Errorf("line %d: binary copied to %s, want /usr/local/bin/vaultsink (on PATH)", in.Line, f[2])
				}
			}
		}
		if !copied {
			t.Errorf("final stage does not COPY --from=build %s", outPath)
		}
		for _, in := range instrs {
			if in.Cmd == "ADD" && regexp.MustCompile(`(?i)\b(https?|git)://|git@`).MatchString(in.Args) {
				t.Errorf("line %d: ADD of a remote URL: %s", in.Line, in.Args)
			}
		}
	})

	t.Run("dockerignore", func(t *testing.T) {
		for line := range strings.SplitSeq(string(readFile(t, ".dockerignore")), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			for _, needed := range []string{"go.mod", "go.sum", "cmd", "cmd/vaultsink", "*", "**", "*.go", "**/*.go"} {
				if strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/") == needed {
					t.Errorf(".dockerignore excludes %q, which the build needs", line)
				}
			}
		}
	})

	t.Run("hadolint", func(t *testing.T) {
		h, err := exec.LookPath("hadolint")
		if err != nil {
			t.Skip("hadolint is not on PATH (it is not a Debian package); the structural checks above still ran")
		}
		out, err := exec.Command(h, filepath.Join(repoRoot(t), "deploy/container/Dockerfile")).CombinedOutput()
		if err != nil {
			t.Errorf("hadolint: %v\n%s", err, out)
		}
	})

	t.Run("build stage", func(t *testing.T) {
		bin := vaultsinkBinary(t)
		t.Logf("ran: %s", strings.SplitN(buildLog, "\n", 2)[0])
		f, err := elf.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Error("binary has a PT_INTERP header: dynamically linked, it cannot run on distroless/static")
			}
			if p.Type == elf.PT_DYNAMIC {
				t.Error("binary has a PT_DYNAMIC header: dynamically linked")
			}
		}
		if s := f.Section(".dynamic"); s != nil {
			t.Error("binary has a .dynamic section")
		}
		if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
			t.Errorf("binary imports shared libraries %v", libs)
		}
		if s := f.Section(".symtab"); s != nil {
			t.Error("binary has a symbol table: -ldflags -s did not apply")
		}
		out, err := runBin(t, "version")
		if err != nil {
			t.Fatalf("vaultsink version: %v\n%s", err, out)
		}
		// Built by the same go as this test, so the Go release and platform match ours.
		want := fmt.Sprintf("vaultsink %s (%s, %s/%s)", binVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		if got := strings.TrimSpace(out); got != want {
			t.Errorf("vaultsink version = %q, want %q (the VERSION build arg must reach -X main.version)", got, want)
		}
	})

	t.Run("container config", func(t *testing.T) {
		text := string(readFile(t, "deploy/container/config.container.yaml"))
		var c struct {
			Server struct {
				Listen string `json:"listen"`
			} `json:"server"`
			Sink       struct{ Type string } `json:"sink"`
			Checkpoint struct{ Type string } `json:"checkpoint"`
		}
		if err := yamlUnmarshal([]byte(text), &c); err != nil {
			t.Fatal(err)
		}
		if c.Server.Listen != ":9464" {
			t.Errorf("server.listen %q, want \":9464\" (the EXPOSEd port on every interface)", c.Server.Listen)
		}
		if c.Sink.Type != "s3" || c.Checkpoint.Type != "s3" {
			t.Errorf("sink %q, checkpoint %q: the container example keeps data and state in S3", c.Sink.Type, c.Checkpoint.Type)
		}
		checkConfigFile(t, text, "/var/run/secrets/vaultsink")
	})
}

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(src string) unitFile {
	u := unitFile{}
	sec := ""
	for line := range strings.SplitSeq(src, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			sec = strings.Trim(line, "[]")
			if u[sec] == nil {
				u[sec] = map[string][]string{}
			}
		default:
			k, v, _ := strings.Cut(line, "=")
			u[sec][strings.TrimSpace(k)] = append(u[sec][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

// get returns the last value of key (systemd's "last one wins").
func (u unitFile) get(sec, key string) (string, bool) {
	v := u[sec][key]
	if len(v) == 0 {
		return "", false
	}
	return v[len(v)-1], true
}

// hardeningProblems lists the hardening settings a vaultsink service unit
// lacks; the values are the ones the unit must have exactly.
func hardeningProblems(u unitFile) []string {
	want := map[string]string{
		"NoNewPrivileges":            "yes",
		"ProtectSystem":              "strict",
		"ProtectHome":                "yes",
		"PrivateTmp":                 "yes",
		"PrivateDevices":             "yes",
		"ProtectKernelTunables":      "yes",
		"ProtectKernelModules":       "yes",
		"ProtectKernelLogs":          "yes",
		"ProtectControlGroups":       "yes",
		"RestrictAddressFamilies":    "AF_INET AF_INET6 AF_UNIX",
		"RestrictNamespaces":         "yes",
		"LockPersonality":            "yes",
		"MemoryDenyWriteExecute":     "yes",
		"CapabilityBoundingSet":      "",
		"AmbientCapabilities":        "",
		"SystemCallArchitectures":    "native",
		"UMask":                      "0077",
		"StateDirectory":             "vaultsink",
		"ConfigurationDirectory":     "vaultsink",
		"EnvironmentFile":            "-/etc/vaultsink/vaultsink.env",
		"KillSignal":                 "SIGTERM",
		"ReadWritePaths":             "/var/lib/vaultsink",
		"RestrictSUIDSGID":           "yes",
		"ProtectClock":               "yes",
		"ProtectHostname":            "yes",
		"RestrictRealtime":           "yes",
		"ProtectProc":                "invisible",
		"SystemCallErrorNumber":      "EPERM",
		"WorkingDirectory":           "/var/lib/vaultsink",
		"ConfigurationDirectoryMode": "0755",
	}
	var probs []string
	for k, v := range want {
		got, ok := u.get("Service", k)
		if !ok {
			probs = append(probs, fmt.Sprintf("[Service] %s= is missing (want %s=%s)", k, k, v))
		} else if got != v {
			probs = append(probs, fmt.Sprintf("[Service] %s=%s, want %s", k, got, v))
		}
	}
	if d, _ := u.get("Service", "DynamicUser"); d != "yes" {
		if user, _ := u.get("Service", "User"); user == "" || user == "root" {
			probs = append(probs, "[Service] neither DynamicUser=yes nor a dedicated User=")
		}
	}
	filters := u["Service"]["SystemCallFilter"]
	if len(filters) == 0 || filters[0] != "@system-service" {
		probs = append(probs, fmt.Sprintf("[Service] SystemCallFilter=%v, want @system-service first", filters))
	}
	if ts, ok := u.get("Service", "TimeoutStopSec"); !ok {
		probs = append(probs, "[Service] TimeoutStopSec= is missing")
	} else if d, err := time.ParseDuration(ts); err != nil {
		probs = append(probs, fmt.Sprintf("[Service] TimeoutStopSec=%s: not a plain Go-style duration (%v)", ts, err))
	} else if d <= config.DefaultShutdownGrace {
		probs = append(probs, fmt.Sprintf("[Service] TimeoutStopSec=%s is not above the default shutdown_grace %s: systemd would kill a window about to commit", ts, config.DefaultShutdownGrace))
	}
	return probs
}

func TestSystemdUnits(t *testing.T) {
	const bin = "/usr/local/bin/vaultsink"
	units := map[string]struct {
		exec    string
		typ     string
		restart string
	}{
		"vaultsink.service":      {bin + " run --config /etc/vaultsink/config.yaml", "exec", "on-failure"},
		"vaultsink-sync.service": {bin + " sync --config /etc/vaultsink/config.yaml", "oneshot", ""},
	}
	for name, want := range units {
		t.Run(name, func(t *testing.T) {
			u := parseUnit(string(readFile(t, "deploy/systemd/"+name)))
			if got, _ := u.get("Service", "ExecStart"); got != want.exec {
				t.Errorf("ExecStart=%s, want %s", got, want.exec)
			}
			if got, _ := u.get("Service", "Type"); got != want.typ {
				t.Errorf("Type=%s, want %s", got, want.typ)
			}
			if got, _ := u.get("Service", "Restart"); got != want.restart {
				t.Errorf("Restart=%s, want %q", got, want.restart)
			}
			for _, p := range hardeningProblems(u) {
				t.Error(p)
			}
		})
	}
	t.Run("timer", func(t *testing.T) {
		u := parseUnit(string(readFile(t, "deploy/systemd/vaultsink-sync.timer")))
		if got, _ := u.get("Timer", "Unit"); got != "vaultsink-sync.service" {
			t.Errorf("Unit=%s, want vaultsink-sync.service", got)
		}
		if got, _ := u.get("Timer", "OnCalendar"); got == "" {
			t.Error("OnCalendar= is missing")
		}
		if got, _ := u.get("Install", "WantedBy"); got != "timers.target" {
			t.Errorf("WantedBy=%s, want timers.target", got)
		}
	})
	t.Run("the checker catches a bare unit", func(t *testing.T) {
		u := parseUnit("[Service]\nExecStart=/bin/true\nTimeoutStopSec=10s\n")
		probs := hardeningProblems(u)
		if len(probs) < 25 {
			t.Errorf("a unit without hardening got only %d problems: %v", len(probs), probs)
		}
	})
	t.Run("env example", func(t *testing.T) {
		env := string(readFile(t, "deploy/systemd/vaultsink.env.example"))
		if !regexp.MustCompile(`(?m)^VT_TOKEN_ORG_1=`).MatchString(env) {
			t.Error("vaultsink.env.example does not show a VT_TOKEN_ORG_1= line")
		}
	})

	t.Run("production config", func(t *testing.T) {
		// What the README installs as /etc/vaultsink/config.yaml: it loads,
		// holds no secret, and writes only where the unit lets it.
		readme := string(readFile(t, "deploy/systemd/README.md"))
		if !strings.Contains(readme, "install -m 0644 deploy/systemd/config.yaml /etc/vaultsink/config.yaml") {
			t.Error("README.md does not install deploy/systemd/config.yaml as /etc/vaultsink/config.yaml")
		}
		if strings.Contains(readme, "deploy/config.example.yaml /etc/vaultsink") {
			t.Error("README.md installs the reference example as the production config")
		}
		text := readFile(t, "deploy/systemd/config.yaml")
		t.Setenv("VT_TOKEN_ORG_1", "vt_secret_TEST")
		c, err := config.Parse(text, "deploy/systemd/config.yaml")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range c.Orgs {
			if !o.Token.Empty() {
				t.Errorf("org %s: an inline token in the shipped config", o.ID)
			}
		}
		u := parseUnit(string(readFile(t, "deploy/systemd/vaultsink.service")))
		writable, _ := u.get("Service", "ReadWritePaths")
		sink, ok := c.Sink.Config.(*local.Config)
		store, ok2 := c.Checkpoint.Config.(*checkpoint.FileConfig)
		if !ok || !ok2 {
			t.Fatalf("sink %q, checkpoint %q: want local and file", c.Sink.Type, c.Checkpoint.Type)
		}
		for key, p := range map[string]string{"sink.path": sink.Path, "checkpoint.path": store.Path} {
			if !strings.HasPrefix(p, writable+"/") {
				t.Errorf("%s %s is outside the unit's ReadWritePaths=%s", key, p, writable)
			}
		}
	})

	t.Run("systemd-analyze", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze is not installed (Debian package: systemd; `apt-get install -y systemd`); the key checks above still ran")
		}
		dir := t.TempDir()
		real := vaultsinkBinary(t)
		var paths []string
		for _, name := range []string{"vaultsink.service", "vaultsink-sync.service", "vaultsink-sync.timer"} {
			// verify checks that ExecStart exists and is executable: point
			// it at the binary the image ships.
			src := strings.ReplaceAll(string(readFile(t, "deploy/systemd/"+name)), bin, real)
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, paths...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			// Warnings (unknown keys, bad values) exit 0 but are printed.
			t.Errorf("systemd-analyze verify: err=%v\n%s", err, out)
		}
		for _, p := range paths[:2] {
			// Exposure is reported 0.0-10.0; the threshold is in tenths.
			cmd := exec.Command(sa, "security", "--offline=yes", "--threshold=20", "--no-pager", p)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Errorf("systemd-analyze security %s: exposure above 2.0 or error: %v\n%s", filepath.Base(p), err, out)
				continue
			}
			if m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindSubmatch(out); m != nil {
				t.Logf("%s: exposure %s", filepath.Base(p), m[1])
			}
		}
	})
}
