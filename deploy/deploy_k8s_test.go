package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

func yamlUnmarshal(b []byte, v any) error { return yaml.Unmarshal(b, v) }

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor we
// ship (the operator's Go types are not a dependency); strict decoding
// still catches a misspelt field.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace,omitempty"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

// manifests holds every object of deploy/kubernetes, decoded strictly.
type manifests struct {
	files       map[string][]any // file -> objects
	deployments []*appsv1.Deployment
	cronJobs    []*batchv1.CronJob
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	sas         map[string]*corev1.ServiceAccount
	services    []*corev1.Service
	netpols     []*networkingv1.NetworkPolicy
	monitors    []*serviceMonitor
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy/kubernetes")
	names, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{files: map[string][]any{}, configMaps: map[string]*corev1.ConfigMap{},
		secrets: map[string]*corev1.Secret{}, sas: map[string]*corev1.ServiceAccount{}}
	for _, name := range names {
		base := filepath.Base(name)
		if base == "kustomization.yaml" {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(src, []byte("\n---")) {
			if len(bytes.TrimSpace(stripComments(doc))) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s doc %d: %v", base, i, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				m.deployments, obj = append(m.deployments, o), o
			case "batch/v1 CronJob":
				o := &batchv1.CronJob{}
				m.cronJobs, obj = append(m.cronJobs, o), o
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "v1 Secret":
				obj = &corev1.Secret{}
			case "v1 ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "v1 Service":
				o := &corev1.Service{}
				m.services, obj = append(m.services, o), o
			case "networking.k8s.io/v1 NetworkPolicy":
				o := &networkingv1.NetworkPolicy{}
				m.netpols, obj = append(m.netpols, o), o
			case "monitoring.coreos.com/v1 ServiceMonitor":
				o := &serviceMonitor{}
				m.monitors, obj = append(m.monitors, o), o
			case "monitoring.coreos.com/v1 PrometheusRule":
				obj = &prometheusRule{}
			default:
				t.Fatalf("%s doc %d: unexpected %s %s", base, i, tm.APIVersion, tm.Kind)
			}
			// Strict: an unknown or misspelt field is an error, as kubectl's
			// server-side field validation would make it.
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s doc %d (%s): %v", base, i, tm.Kind, err)
			}
			if meta, ok := obj.(metav1.Object); ok {
				if meta.GetNamespace() != "" {
					t.Errorf("%s: %s %s sets namespace %q: the manifests are namespace-agnostic", base, tm.Kind, meta.GetName(), meta.GetNamespace())
				}
				if meta.GetName() == "" {
					t.Errorf("%s: %s without a name", base, tm.Kind)
				}
				if meta.GetLabels()["app.kubernetes.io/name"] != "vaultsink" {
					t.Errorf("%s: %s %s lacks label app.kubernetes.io/name=vaultsink", base, tm.Kind, meta.GetName())
				}
			}
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Secret:
				m.secrets[o.Name] = o
			case *corev1.ServiceAccount:
				m.sas[o.Name] = o
			}
			m.files[base] = append(m.files[base], obj)
		}
	}
	return m
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for l := range bytes.SplitSeq(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// shippedConfig is the part of vaultsink's config the manifests must agree with.
type shippedConfig struct {
	Server struct {
		Listen string `json:"listen"`
	} `json:"server"`
	ShutdownGrace string `json:"shutdown_grace"`
	Orgs          []struct {
		ID        string `json:"id"`
		TokenFile string `json:"token_file"`
	} `json:"orgs"`
	Checkpoint struct {
		Type string `json:"type"`
	} `json:"checkpoint"`
}

func isTrue(b *bool) bool { return b != nil && *b }

// checkPod checks a pod template of the daemon or the sync job; it returns
// the container's config path and its mounted ConfigMap's config.
func checkPod(t *testing.T, m *manifests, what string, spec corev1.PodSpec, wantCmd string) (shippedConfig, string) {
	t.Helper()
	var cfg shippedConfig
	psc := spec.SecurityContext
	if psc == nil || !isTrue(psc.RunAsNonRoot) || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod securityContext must set runAsNonRoot and seccompProfile RuntimeDefault: %+v", what, psc)
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		t.Errorf("%s: runAsUser 0", what)
	}
	if spec.ServiceAccountName == "" || m.sas[spec.ServiceAccountName] == nil {
		t.Errorf("%s: serviceAccountName %q is not a shipped ServiceAccount", what, spec.ServiceAccountName)
	}
	if len(spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", what, len(spec.Containers))
	}
	c := spec.Containers[0]
	if c.Image == "" || !strings.Contains(c.Image[strings.LastIndex(c.Image, "/")+1:], ":") || strings.HasSuffix(c.Image, ":latest") {
		t.Errorf("%s: image %q: want a pinned tag (not latest)", what, c.Image)
	}
	sc := c.SecurityContext
	if sc == nil || !isTrue(sc.ReadOnlyRootFilesystem) || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: container securityContext must be readOnlyRootFilesystem, no privilege escalation, drop ALL: %+v", what, sc)
	}
	if sc != nil && isTrue(sc.Privileged) {
		t.Errorf("%s: privileged container", what)
	}

	// Resources: requests and limits, requests within limits.
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okR := c.Resources.Requests[r]
		lim, okL := c.Resources.Limits[r]
		if !okR || !okL {
			t.Errorf("%s: resources must request and limit %s", what, r)
			continue
		}
		if req.Cmp(lim) > 0 {
			t.Errorf("%s: %s request %s above limit %s", what, r, req.String(), lim.String())
		}
	}
	// The benchmark's peak RSS (~90 MiB, bench/REPORT.md) must fit, with room.
	if lim := c.Resources.Limits[corev1.ResourceMemory]; lim.Cmp(resource.MustParse("256Mi")) < 0 {
		t.Errorf("%s: memory limit %s is below the measured peak RSS headroom (256Mi)", what, lim.String())
	}
	gomem := false
	for _, e := range c.Env {
		if e.Name == "GOMEMLIMIT" {
			gomem = e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil &&
				e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
		}
	}
	if !gomem {
		t.Errorf("%s: GOMEMLIMIT must come from limits.memory via resourceFieldRef", what)
	}

	// Command: <cmd> --config <path>, the path inside a mounted ConfigMap.
	if len(c.Command) != 0 {
		t.Errorf("%s: command %v overrides the image's ENTRYPOINT", what, c.Command)
	}
	if len(c.Args) == 0 || c.Args[0] != wantCmd {
		t.Errorf("%s: args %v, want %s first", what, c.Args, wantCmd)
	}
	cfgPath := ""
	for i, a := range c.Args {
		if a == "--config" && i+1 < len(c.Args) {
			cfgPath = c.Args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfgPath = v
		}
	}
	if cfgPath != "/etc/vaultsink/config.yaml" {
		t.Errorf("%s: --config %q, want the image's default /etc/vaultsink/config.yaml", what, cfgPath)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mountOf := func(p string) (corev1.VolumeMount, bool) {
		for _, vm := range c.VolumeMounts {
			if strings.HasPrefix(p, strings.TrimSuffix(vm.MountPath, "/")+"/") {
				return vm, true
			}
		}
		return corev1.VolumeMount{}, false
	}
	vm, ok := mountOf(cfgPath)
	if !ok {
		t.Fatalf("%s: no volume is mounted at the config path %s", what, cfgPath)
	}
	v := vols[vm.Name]
	if v.ConfigMap == nil {
		t.Fatalf("%s: the volume at %s is not a ConfigMap", what, vm.MountPath)
	}
	cm := m.configMaps[v.ConfigMap.Name]
	if cm == nil {
		t.Fatalf("%s: ConfigMap %q is not shipped", what, v.ConfigMap.Name)
	}
	rel := strings.TrimPrefix(cfgPath, strings.TrimSuffix(vm.MountPath, "/")+"/")
	key := rel
	if len(v.ConfigMap.Items) > 0 {
		key = ""
		for _, it := range v.ConfigMap.Items {
			if it.Path == rel {
				key = it.Key
			}
		}
	}
	text, ok := cm.Data[key]
	if !ok || key == "" {
		t.Fatalf("%s: ConfigMap %s has no key for %s (key %q)", what, cm.Name, rel, key)
	}
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("%s: config in ConfigMap %s: %v", what, cm.Name, err)
	}
	if !vm.ReadOnly {
		t.Errorf("%s: config mount %s is writable", what, vm.MountPath)
	}

	// Tokens: every token_file lies in a mounted Secret that has its key.
	if len(cfg.Orgs) == 0 {
		t.Errorf("%s: the config has no orgs", what)
	}
	for _, o := range cfg.Orgs {
		if o.TokenFile == "" {
			t.Errorf("%s: org %s has no token_file (tokens come from the Secret)", what, o.ID)
			continue
		}
		vm, ok := mountOf(o.TokenFile)
		if !ok || vols[vm.Name].Secret == nil {
			t.Errorf("%s: token_file %s of org %s is not in a mounted Secret", what, o.TokenFile, o.ID)
			continue
		}
		sec := m.secrets[vols[vm.Name].Secret.SecretName]
		if sec == nil {
			t.Errorf("%s: Secret %q has no shipped example", what, vols[vm.Name].Secret.SecretName)
			continue
		}
		if _, ok := sec.StringData[path.Base(o.TokenFile)]; !ok {
			t.Errorf("%s: Secret %s has no key %s for org %s", what, sec.Name, path.Base(o.TokenFile), o.ID)
		}
		if !vm.ReadOnly {
			t.Errorf("%s: secret mount %s is writable", what, vm.MountPath)
		}
	}
	if cfg.Checkpoint.Type != "s3" {
		t.Errorf("%s: checkpoint type %q: a pod keeps no state, use s3", what, cfg.Checkpoint.Type)
	}
	// Grace: Kubernetes' SIGKILL must come after shutdown_grace.
	grace, err := time.ParseDuration(cfg.ShutdownGrace)
	if err != nil {
		t.Errorf("%s: shutdown_grace %q: %v", what, cfg.ShutdownGrace, err)
	} else if spec.TerminationGracePeriodSeconds == nil || time.Duration(*spec.TerminationGracePeriodSeconds)*time.Second <= grace {
		t.Errorf("%s: terminationGracePeriodSeconds %v must exceed shutdown_grace %s", what, spec.TerminationGracePeriodSeconds, grace)
	}
	return cfg, text
}

func portNumber(t *testing.T, listen string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("server.listen %q: %v", listen, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("server.listen %q: %v", listen, err)
	}
	return int32(n)
}

// resolvePort maps a probe or Service port (number or name) to a number.
func resolvePort(c corev1.Container, p intstr.IntOrString) (int32, error) {
	if p.Type == intstr.Int {
		return p.IntVal, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("no container port named %q", p.StrVal)
}

func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t)
	if len(m.deployments) != 1 || len(m.cronJobs) != 1 || len(m.netpols) != 1 || len(m.services) != 1 {
		t.Fatalf("want one each of Deployment, CronJob, NetworkPolicy, Service; got %d, %d, %d, %d",
			len(m.deployments), len(m.cronJobs), len(m.netpols), len(m.services))
	}
	d := m.deployments[0]
	podLabels := d.Spec.Template.Labels
	var metricsPort int32 // from the ConfigMap's server.listen, set by the deployment subtest

	t.Run("deployment", func(t *testing.T) {
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
			t.Errorf("replicas %v, want 1", d.Spec.Replicas)
		}
		if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
			t.Errorf("strategy %q, want Recreate", d.Spec.Strategy.Type)
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(podLabels)) {
			t.Errorf("selector %v does not match the pod labels %v (%v)", d.Spec.Selector, podLabels, err)
		}
		cfg, text := checkPod(t, m, "Deployment", d.Spec.Template.Spec, "run")
		port := portNumber(t, cfg.Server.Listen)
		metricsPort = port
		if host, _, _ := net.SplitHostPort(cfg.Server.Listen); host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("server.listen %q binds %s: the kubelet's probes cannot reach it", cfg.Server.Listen, host)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == port }) {
			t.Errorf("no containerPort %d (server.listen %s)", port, cfg.Server.Listen)
		}
		for _, pr := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Errorf("%s probe: want httpGet %s", pr.name, pr.path)
				continue
			}
			if pr.probe.HTTPGet.Path != pr.path {
				t.Errorf("%s probe path %q, want %s", pr.name, pr.probe.HTTPGet.Path, pr.path)
			}
			if p, err := resolvePort(c, pr.probe.HTTPGet.Port); err != nil || p != port {
				t.Errorf("%s probe port %v = %d (%v), want %d from server.listen", pr.name, pr.probe.HTTPGet.Port.String(), p, err, port)
			}
		}
		ann := d.Spec.Template.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(int(port)) || ann["prometheus.io/path"] != "/metrics" {
			t.Errorf("pod annotations %v: want prometheus.io/scrape=true, port=%d, path=/metrics", ann, port)
		}
		// The same config validates with the binary the image ships.
		checkConfigFile(t, text, "/var/run/secrets/vaultsink")
	})

	t.Run("cronjob", func(t *testing.T) {
		cj := m.cronJobs[0]
		if cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
			t.Errorf("concurrencyPolicy %q, want Forbid", cj.Spec.ConcurrencyPolicy)
		}
		if cj.Spec.Schedule == "" {
			t.Error("no schedule")
		}
		spec := cj.Spec.JobTemplate.Spec.Template.Spec
		if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
			t.Errorf("restartPolicy %q", spec.RestartPolicy)
		}
		checkPod(t, m, "CronJob", spec, "sync")
		if img, dimg := spec.Containers[0].Image, d.Spec.Template.Spec.Containers[0].Image; img != dimg {
			t.Errorf("CronJob image %s differs from the Deployment's %s", img, dimg)
		}
	})

	t.Run("service", func(t *testing.T) {
		s := m.services[0]
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(podLabels)) || len(s.Spec.Selector) == 0 {
			t.Errorf("Service selector %v does not select the Deployment's pods %v", s.Spec.Selector, podLabels)
		}
		c := d.Spec.Template.Spec.Containers[0]
		for _, p := range s.Spec.Ports {
			if _, err := resolvePort(c, p.TargetPort); err != nil {
				t.Errorf("Service port %s: %v", p.Name, err)
			}
		}
		for _, sm := range m.monitors {
			sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(s.Labels)) {
				t.Errorf("ServiceMonitor selector %v does not select Service labels %v", sm.Spec.Selector, s.Labels)
			}
			for _, e := range sm.Spec.Endpoints {
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port }) || e.Path != "/metrics" {
					t.Errorf("ServiceMonitor endpoint %+v: want a Service port name and /metrics", e)
				}
			}
		}
	})

	t.Run("networkpolicy", func(t *testing.T) {
		np := m.netpols[0]
		sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || sel.Empty() {
			t.Fatalf("podSelector %v: want vaultsink's pods only (%v)", np.Spec.PodSelector, err)
		}
		for what, l := range map[string]map[string]string{"Deployment": podLabels, "CronJob": m.cronJobs[0].Spec.JobTemplate.Spec.Template.Labels} {
			if !sel.Matches(labels.Set(l)) {
				t.Errorf("NetworkPolicy does not select the %s's pods %v", what, l)
			}
		}
		if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			t.Errorf("policyTypes %v: want Ingress and Egress", np.Spec.PolicyTypes)
		}
		if len(np.Spec.Egress) < 3 {
			t.Errorf("%d egress rules: want DNS, the API and the sink", len(np.Spec.Egress))
		}
		dns := false
		for i, r := range np.Spec.Egress {
			if len(r.To) == 0 || len(r.Ports) == 0 {
				t.Errorf("egress rule %d allows every destination or port: %+v", i, r)
			}
			for _, p := range r.Ports {
				if p.Port != nil && p.Port.IntValue() == 53 {
					dns = true
				}
			}
			for _, to := range r.To {
				if to.IPBlock != nil {
					if _, n, err := net.ParseCIDR(to.IPBlock.CIDR); err != nil {
						t.Errorf("egress rule %d: cidr %q: %v", i, to.IPBlock.CIDR, err)
					} else if ones, _ := n.Mask.Size(); ones == 0 {
						t.Errorf("egress rule %d: cidr %s is the whole internet", i, to.IPBlock.CIDR)
					}
				}
			}
		}
		if !dns {
			t.Error("no egress rule for DNS (port 53)")
		}
		port := metricsPort
		ok := false
		for _, r := range np.Spec.Ingress {
			for _, p := range r.Ports {
				if p.Port != nil && int32(p.Port.IntValue()) == port {
					ok = true
				}
			}
		}
		if !ok {
			t.Errorf("no ingress rule for the metrics port %d", port)
		}
	})

	t.Run("kustomization", func(t *testing.T) {
		var k kustomization
		if err := yaml.UnmarshalStrict(readFile(t, "deploy/kubernetes/kustomization.yaml"), &k); err != nil {
			t.Fatal(err)
		}
		if k.Kind != "Kustomization" || k.Namespace != "" {
			t.Errorf("kind %q namespace %q: want a namespace-agnostic Kustomization", k.Kind, k.Namespace)
		}
		listed := map[string]bool{}
		for _, r := range k.Resources {
			listed[r] = true
			if _, ok := m.files[r]; !ok {
				t.Errorf("resource %s is not a manifest in deploy/kubernetes", r)
			}
		}
		// Everything is applied except the documented alternatives.
		optional := map[string]bool{"cronjob.yaml": true, "servicemonitor.yaml": true, "prometheusrule.yaml": true, "secret.example.yaml": true}
		for f := range m.files {
			if !listed[f] && !optional[f] {
				t.Errorf("%s is neither in kustomization.yaml nor a documented optional file", f)
			}
			if listed[f] && f == "secret.example.yaml" {
				t.Error("kustomization applies the placeholder Secret")
			}
		}
		img := d.Spec.Template.Spec.Containers[0].Image
		name, tag, _ := strings.Cut(img, ":")
		for _, i := range k.Images {
			if i.Name == name && i.NewTag != "" && i.NewTag != tag {
				t.Errorf("kustomization tag %s differs from the manifests' %s", i.NewTag, tag)
			}
		}
	})
}
