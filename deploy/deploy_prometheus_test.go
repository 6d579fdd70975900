package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ruleGroup is a Prometheus rule group, as a rules file and the Prometheus
// Operator's PrometheusRule both write it; strict decoding catches a
// misspelt field.
type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Rules    []struct {
		Alert       string            `json:"alert,omitempty"`
		Record      string            `json:"record,omitempty"`
		Expr        string            `json:"expr"`
		For         string            `json:"for,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"rules"`
}

// prometheusRule is the part of monitoring.coreos.com/v1 PrometheusRule we
// ship (the operator's Go types are not a dependency).
type prometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []ruleGroup `json:"groups"`
	} `json:"spec"`
}

// promtool finds promtool: on PATH (make puts .tools/ there) or in .tools/.
// `make tools` installs it, so under make (VAULTSINK_TOOLS set) a missing
// promtool fails the test; a bare `go test` skips, saying how to get it.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if p := filepath.Join(repoRoot(t), ".tools", "promtool"); fileExists(p) {
		return p
	}
	const how = "promtool is not installed: `make tools` puts it in .tools/ (from Debian's prometheus package)"
	if os.Getenv("VAULTSINK_TOOLS") != "" {
		t.Fatal(how)
	}
	t.Skip(how + "; the structural checks still ran")
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// TestPrometheusRules checks the shipped alert rules: their shape, that the
// PrometheusRule carries the same rules, that every metric they query is
// one vaultsink exports, and then promtool's check and its unit tests
// (vaultsink.rules.test.yaml: each alert fires when it should, and not on
// the healthy or transient series beside it).
func TestPrometheusRules(t *testing.T) {
	var file struct {
		Groups []ruleGroup `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(readFile(t, "deploy/prometheus/vaultsink.rules.yaml"), &file); err != nil {
		t.Fatalf("vaultsink.rules.yaml: %v", err)
	}
	alerts := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts++
			if s := r.Labels["severity"]; s != "critical" && s != "warning" && s != "info" {
				t.Errorf("%s: severity %q, want critical, warning or info", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary", r.Alert)
			}
			// The runbook: what to run, not only what to look at.
			if d := r.Annotations["description"]; !strings.Contains(d, "`vaultsink ") {
				t.Errorf("%s: the description names no vaultsink command: %q", r.Alert, d)
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts in vaultsink.rules.yaml")
	}

	t.Run("PrometheusRule", func(t *testing.T) {
		objs := loadManifests(t).files["prometheusrule.yaml"]
		if len(objs) != 1 {
			t.Fatalf("prometheusrule.yaml holds %d objects, want one PrometheusRule", len(objs))
		}
		pr, ok := objs[0].(*prometheusRule)
		if !ok {
			t.Fatalf("prometheusrule.yaml holds a %T", objs[0])
		}
		if !reflect.DeepEqual(pr.Spec.Groups, file.Groups) {
			t.Error("the PrometheusRule's groups differ from deploy/prometheus/vaultsink.rules.yaml: copy the rules over")
		}
	})

	t.Run("metrics", func(t *testing.T) {
		exported := exportedMetrics(t)
		for _, g := range file.Groups {
			for _, r := range g.Rules {
				for _, m := range metricName.FindAllString(r.Expr, -1) {
					if strings.HasPrefix(m, "vaultsink_") && !exported[m] {
						t.Errorf("%s queries %s, which no vaultsink code exports", r.Alert, m)
					}
				}
			}
		}
	})

	t.Run("promtool", func(t *testing.T) {
		bin := promtool(t)
		dir := filepath.Join(repoRoot(t), "deploy/prometheus")
		for _, args := range [][]string{
			{"check", "rules", "vaultsink.rules.yaml"},
			{"test", "rules", "vaultsink.rules.test.yaml"},
		} {
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
	})
}

// exportedMetrics is every metric name vaultsink's code declares: the
// Name of an Opts literal or the first argument of prometheus.NewDesc.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(vaultsink_[a-z0-9_]+)"`)
	out := map[string]bool{}
	root := repoRoot(t)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".tools" || d.Name() == ".git" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			name := string(m[1])
			out[name] = true
			// A histogram's series.
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !out["vaultsink_checkpoint_lag_seconds"] || !out["vaultsink_run_errors_total"] {
		t.Fatalf("found %d metric declarations, not the run loop's: the pattern no longer matches the code", len(out))
	}
	return out
}
