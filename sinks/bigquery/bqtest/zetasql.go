package bqtest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vaultsink/vaultsink/internal/fsutil"
)

// ZetaSQLPackage is the npm package whose analyzer checks every statement
// the stand-in runs: Google's ZetaSQL (the GoogleSQL front end BigQuery
// uses) with a local analyzer server for Linux and macOS.
const ZetaSQLPackage = "@fivetrandevelopers/zetasql@1.13.0"

//go:embed zetasql_bridge.js
var bridgeJS []byte

// analyzer is one running zetasql_bridge.js (and the analyzer server it
// started), shared by every Server of the test process.
type analyzer struct {
	in   io.WriteCloser
	mu   sync.Mutex // guards in, next, pending, dead
	next int64
	wait map[int64]chan analysis
	dead error
	errs *tailBuffer
}

// analysis is the bridge's answer for one statement or script.
type analysis struct {
	ID         int64               `json:"id"`
	Statements []analyzedStatement `json:"statements"`
	Error      string              `json:"error"`
}

type analyzedStatement struct {
	Kind  string     `json:"kind"`
	Scans []scanInfo `json:"scans"`
}

// scanInfo is a scan of a partitioned table and the comparisons of its
// partition column with query parameters among the scan's filters.
type scanInfo struct {
	Table  string `json:"table"`
	Bounds []struct {
		Op    string `json:"op"`
		Param string `json:"param"`
	} `json:"bounds"`
}

// analyzeRequest is what the bridge needs: the statement or script, the
// catalog and the parameters' types.
type analyzeRequest struct {
	ID     int64          `json:"id"`
	SQL    string         `json:"sql"`
	Tables []catalogTable `json:"tables"`
	Params [][2]string    `json:"params"`
}

type catalogTable struct {
	Names     []string    `json:"names"`
	Columns   [][2]string `json:"columns"`
	Partition string      `json:"partition,omitempty"`
}

var (
	azOnce sync.Once
	az     *analyzer
	azSkip string // why the stand-in cannot run here (no node)
	azErr  error
)

// sharedAnalyzer starts the bridge on first use. skip is set when Node.js
// is not installed; err when the package could not be installed or the
// bridge did not start.
func sharedAnalyzer() (a *analyzer, skip string, err error) {
	azOnce.Do(func() { az, azSkip, azErr = startAnalyzer() })
	return az, azSkip, azErr
}

func startAnalyzer() (*analyzer, string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, "the BigQuery stand-in (bqtest) checks every statement with Google's ZetaSQL analyzer, npm package " + ZetaSQLPackage +
			", which runs under Node.js (Debian: apt-get install nodejs npm; then make tools)", nil
	}
	dir, err := zetasqlDir()
	if err != nil {
		return nil, "", err
	}
	script, err := os.CreateTemp("", "vaultsink-zetasql-bridge-*.js")
	if err != nil {
		return nil, "", err
	}
	defer os.Remove(script.Name())
	if _, err := script.Write(bridgeJS); err != nil {
		script.Close()
		return nil, "", err
	}
	if err := script.Close(); err != nil {
		return nil, "", err
	}
	cmd := exec.Command(node, script.Name())
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(dir, "node_modules"))
	cmd.SysProcAttr = bridgeProcAttr()
	errs := &tailBuffer{max: 8 << 10}
	cmd.Stderr = errs
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("start the ZetaSQL bridge: %w", err)
	}
	a := &analyzer{in: in, wait: map[int64]chan analysis{}, errs: errs}
	ready := make(chan error, 1)
	go a.read(bufio.NewReaderSize(out, 1<<20), ready)
	go func() {
		err := cmd.Wait()
		a.fail(fmt.Errorf("the ZetaSQL bridge exited: %v: %s", err, errs.String()))
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, "", err
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		return nil, "", fmt.Errorf("the ZetaSQL bridge did not start within 2m: %s", errs.String())
	}
	return a, "", nil
}

func (a *analyzer) read(r *bufio.Reader, ready chan<- error) {
	first := true
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if first {
				first = false
				if !bytes.Contains(line, []byte(`"ready"`)) {
					ready <- fmt.Errorf("the ZetaSQL bridge said %q", line)
					return
				}
				ready <- nil
				continue
			}
			var res analysis
			if jerr := json.Unmarshal(line, &res); jerr != nil {
				a.fail(fmt.Errorf("bad answer from the ZetaSQL bridge: %v", jerr))
				return
			}
			a.mu.Lock()
			ch := a.wait[res.ID]
			delete(a.wait, res.ID)
			a.mu.Unlock()
			if ch != nil {
				ch <- res
			}
		}
		if err != nil {
			if first {
				ready <- fmt.Errorf("the ZetaSQL bridge did not start: %s", a.errs.String())
			}
			a.fail(fmt.Errorf("the ZetaSQL bridge closed its output: %s", a.errs.String()))
			return
		}
	}
}

func (a *analyzer) fail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.dead == nil {
		a.dead = err
	}
	for id, ch := range a.wait {
		ch <- analysis{ID: id, Error: "bqtest: " + err.Error()}
		delete(a.wait, id)
	}
}

// analyze checks sql (one statement or a script) against the catalog.
// A non-nil error means the bridge is broken, not that ZetaSQL rejected
// the statement (that is analysis.Error).
func (a *analyzer) analyze(ctx context.Context, req analyzeRequest) (analysis, error) {
	ch := make(chan analysis, 1)
	a.mu.Lock()
	if a.dead != nil {
		a.mu.Unlock()
		return analysis{}, a.dead
	}
	a.next++
	req.ID = a.next
	a.wait[req.ID] = ch
	line, err := json.Marshal(req)
	if err == nil {
		_, err = a.in.Write(append(line, '\n'))
	}
	if err != nil {
		delete(a.wait, req.ID)
		a.mu.Unlock()
		return analysis{}, err
	}
	a.mu.Unlock()
	select {
	case res := <-ch:
		if strings.HasPrefix(res.Error, "bqtest: ") {
			return res, errors.New(res.Error)
		}
		return res, nil
	case <-ctx.Done():
		a.mu.Lock()
		delete(a.wait, req.ID)
		a.mu.Unlock()
		return analysis{}, ctx.Err()
	}
}

// zetasqlDir is where the npm package is installed: $VAULTSINK_TOOLS/zetasql
// (the Makefile's tools rule) or .tools/zetasql at the module root. A
// missing install is made here, once, under a lock shared with other test
// processes.
func zetasqlDir() (string, error) {
	tools := os.Getenv("VAULTSINK_TOOLS")
	if tools == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		tools = filepath.Join(root, ".tools")
	}
	dir := filepath.Join(tools, "zetasql")
	if zetasqlInstalled(dir) {
		return dir, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	unlock, err := fsutil.Lock(filepath.Join(tools, ".zetasql.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if zetasqlInstalled(dir) {
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("bqtest: node is installed but npm is not: install npm (Debian: apt-get install npm) or run make tools to install %s into %s", ZetaSQLPackage, dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--no-save", "--loglevel=error", ZetaSQLPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("bqtest: npm install %s into %s: %w\n%s", ZetaSQLPackage, dir, err, out)
	}
	if !zetasqlInstalled(dir) {
		return "", fmt.Errorf("bqtest: npm install %s left no package in %s", ZetaSQLPackage, dir)
	}
	return dir, nil
}

func zetasqlInstalled(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "@fivetrandevelopers", "zetasql", "package.json"))
	if err != nil {
		return false
	}
	var p struct{ Version string }
	want := ZetaSQLPackage[strings.LastIndex(ZetaSQLPackage, "@")+1:]
	return json.Unmarshal(b, &p) == nil && p.Version == want
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bqtest: no go.mod above the working directory to place .tools/ in (set VAULTSINK_TOOLS)")
		}
		dir = parent
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
