package chart_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/hotelbus/hotelbus/charts/hotelbus/test/crd"
	"github.com/hotelbus/hotelbus/charts/hotelbus/test/topology"
)

// pod is one pod template of a rendered workload.
type pod struct {
	where       string
	spec        corev1.PodSpec
	labels      map[string]string
	longRunning bool     // a Deployment's or StatefulSet's: serves probes
	claims      []string // a StatefulSet's volumeClaimTemplates: volumes of each pod
}

func pods(ms []manifest) []pod {
	var out []pod
	for _, d := range ofKind[*appsv1.Deployment](ms) {
		out = append(out, pod{"Deployment " + d.Name, d.Spec.Template.Spec, d.Spec.Template.Labels, true, nil})
	}
	for _, s := range ofKind[*appsv1.StatefulSet](ms) {
		p := pod{"StatefulSet " + s.Name, s.Spec.Template.Spec, s.Spec.Template.Labels, true, nil}
		for _, c := range s.Spec.VolumeClaimTemplates {
			p.claims = append(p.claims, c.Name)
		}
		out = append(out, p)
	}
	for _, j := range ofKind[*batchv1.Job](ms) {
		out = append(out, pod{"Job " + j.Name, j.Spec.Template.Spec, j.Spec.Template.Labels, false, nil})
	}
	for _, p := range ofKind[*corev1.Pod](ms) {
		out = append(out, pod{"Pod " + p.Name, p.Spec, p.Labels, false, nil})
	}
	return out
}

func TestEveryValuesFileRendersDecodableManifests(t *testing.T) {
	all := rendered(t)
	want := map[string][]string{
		"defaults":   {"Deployment", "Service", "Secret", "Job", "ServiceAccount", "PodDisruptionBudget", "Pod"},
		"strimzi":    {"KafkaTopic", "KafkaUser", "Job"},
		"keda":       {"ScaledObject", "TriggerAuthentication"},
		"monitoring": {"ServiceMonitor", "PrometheusRule", "ConfigMap", "NetworkPolicy", "Ingress", "HorizontalPodAutoscaler", "StatefulSet"},
		"off":        {"Deployment"},
	}
	for name, ms := range all {
		if len(ms) == 0 {
			t.Errorf("%s-values.yaml renders nothing", name)
		}
		for _, k := range want[name] {
			if !slices.ContainsFunc(ms, func(m manifest) bool { return m.kind == k }) {
				t.Errorf("%s-values.yaml renders no %s (got %s)", name, k, kinds(ms))
			}
		}
		t.Logf("%s-values.yaml: %d manifests: %s", name, len(ms), kinds(ms))
	}
	for _, k := range []string{"Job", "ServiceAccount", "Secret"} {
		if slices.ContainsFunc(all["off"], func(m manifest) bool { return m.kind == k }) {
			t.Errorf("off-values.yaml renders a %s", k)
		}
	}
}

// The hardening every pod keeps whatever the values.
func TestPodsAreHardened(t *testing.T) {
	for name, ms := range rendered(t) {
		for _, p := range pods(ms) {
			where := name + ": " + p.where
			sc := p.spec.SecurityContext
			if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.SeccompProfile == nil ||
				sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: pod securityContext lacks runAsNonRoot / seccomp RuntimeDefault: %+v", where, sc)
			}
			if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
				t.Errorf("%s: mounts a service account token", where)
			}
			if p.longRunning && p.spec.TopologySpreadConstraints == nil && name != "off" {
				t.Errorf("%s: no topology spread constraints", where)
			}
			for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
				cw := where + " container " + c.Name
				cs := c.SecurityContext
				if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem ||
					cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
					cs.RunAsNonRoot == nil || !*cs.RunAsNonRoot || cs.Capabilities == nil ||
					!slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 ||
					cs.SeccompProfile == nil || cs.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("%s: securityContext not hardened: %+v", cw, cs)
				}
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if _, ok := c.Resources.Requests[r]; !ok {
						t.Errorf("%s: no %s request", cw, r)
					}
					if _, ok := c.Resources.Limits[r]; !ok {
						t.Errorf("%s: no %s limit", cw, r)
					}
				}
				if p.longRunning {
					if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
						t.Errorf("%s: liveness probe is not GET /healthz", cw)
					}
					if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
						t.Errorf("%s: readiness probe is not GET /readyz", cw)
					}
					for _, pr := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
						if pr != nil && pr.HTTPGet != nil && !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
							return cp.Name == pr.HTTPGet.Port.String()
						}) {
							t.Errorf("%s: probe port %s is not a container port", cw, pr.HTTPGet.Port.String())
						}
					}
				}
				mounted := map[string]bool{}
				for _, m := range c.VolumeMounts {
					mounted[m.Name] = true
					if !slices.ContainsFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) && !slices.Contains(p.claims, m.Name) {
						t.Errorf("%s: mounts undeclared volume %s", cw, m.Name)
					}
				}
				if strings.Contains(c.Image, "hotelbus") && !mounted["tmp"] {
					t.Errorf("%s: no writable /tmp (read-only root filesystem)", cw)
				}
			}
		}
	}
}

var (
	sensitiveEnv = regexp.MustCompile(`(?i)password|secret|token|key`)
	// userInfo matches scheme://user:password@ (groups: user, password).
	userInfo = regexp.MustCompile(`://([^:@/]*):([^@/]*)@`)
)

// Secrets are only ever referenced: no credential appears as a plain value in a manifest.
func TestCredentialsComeFromSecrets(t *testing.T) {
	for name, ms := range rendered(t) {
		for _, p := range pods(ms) {
			for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
				env := map[string]corev1.EnvVar{}
				for _, e := range c.Env {
					env[e.Name] = e
					where := name + ": " + p.where + " " + c.Name + " env " + e.Name
					if sensitiveEnv.MatchString(e.Name) && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
						t.Errorf("%s: a credential not taken from a Secret", where)
					}
					// In a URL's user info, the password is only ever a $(VAR) of a variable taken
					// from a Secret and defined before (Kubernetes expands only those).
					if m := userInfo.FindStringSubmatch(e.Value); m != nil && m[2] != "" {
						ref := strings.TrimSuffix(strings.TrimPrefix(m[2], "$("), ")")
						if prev, ok := env[ref]; !ok || "$("+ref+")" != m[2] || prev.ValueFrom == nil || prev.ValueFrom.SecretKeyRef == nil {
							t.Errorf("%s: the password in %q is not a reference to an earlier Secret-backed variable", where, e.Value)
						}
					}
				}
				for i, a := range c.Args {
					if strings.HasPrefix(a, "--sasl-password") && !strings.HasPrefix(a, "--sasl-password-env=") {
						t.Errorf("%s: %s %s arg %d passes a password", name, p.where, c.Name, i)
					}
				}
			}
		}
		for _, s := range ofKind[*corev1.Secret](ms) {
			if !strings.HasSuffix(s.Name, "-gateway-credentials") || s.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("%s: Secret %s rendered; the chart only generates the gateway's kept token Secret", name, s.Name)
			}
		}
	}
}

// Every reference between rendered objects resolves.
func TestReferencesResolve(t *testing.T) {
	for name, ms := range rendered(t) {
		deployments := map[string]*appsv1.Deployment{}
		for _, d := range ofKind[*appsv1.Deployment](ms) {
			deployments[d.Name] = d
			sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
			if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: Deployment %s selector does not match its pods", name, d.Name)
			}
		}
		templates := map[string]map[string]string{} // workload -> its pods' labels
		for _, d := range deployments {
			templates["Deployment "+d.Name] = d.Spec.Template.Labels
		}
		for _, s := range ofKind[*appsv1.StatefulSet](ms) {
			templates["StatefulSet "+s.Name] = s.Spec.Template.Labels
			if !labels.SelectorFromSet(s.Spec.Selector.MatchLabels).Matches(labels.Set(s.Spec.Template.Labels)) {
				t.Errorf("%s: StatefulSet %s selector does not match its pods", name, s.Name)
			}
			if !slices.ContainsFunc(ofKind[*corev1.Service](ms), func(svc *corev1.Service) bool { return svc.Name == s.Spec.ServiceName }) {
				t.Errorf("%s: StatefulSet %s names a missing Service %s", name, s.Name, s.Spec.ServiceName)
			}
		}
		selectsPods := func(set map[string]string) bool {
			for _, l := range templates {
				if labels.SelectorFromSet(set).Matches(labels.Set(l)) {
					return true
				}
			}
			return false
		}
		services := ofKind[*corev1.Service](ms)
		for _, s := range services {
			if !selectsPods(s.Spec.Selector) {
				t.Errorf("%s: Service %s selects no pods", name, s.Name)
			}
		}
		for _, p := range ofKind[*policyv1.PodDisruptionBudget](ms) {
			if !selectsPods(p.Spec.Selector.MatchLabels) {
				t.Errorf("%s: PodDisruptionBudget %s selects no pods", name, p.Name)
			}
		}
		for _, np := range ofKind[*networkingv1.NetworkPolicy](ms) {
			if !selectsPods(np.Spec.PodSelector.MatchLabels) {
				t.Errorf("%s: NetworkPolicy %s selects no pods", name, np.Name)
			}
		}
		for _, h := range ofKind[*autoscalingv2.HorizontalPodAutoscaler](ms) {
			if d := deployments[h.Spec.ScaleTargetRef.Name]; d == nil || d.Spec.Replicas != nil {
				t.Errorf("%s: HPA %s targets %s, which is missing or fixes replicas", name, h.Name, h.Spec.ScaleTargetRef.Name)
			}
		}
		for _, in := range ofKind[*networkingv1.Ingress](ms) {
			for _, r := range in.Spec.Rules {
				for _, p := range r.HTTP.Paths {
					if !slices.ContainsFunc(services, func(s *corev1.Service) bool { return s.Name == p.Backend.Service.Name }) {
						t.Errorf("%s: Ingress %s routes to missing Service %s", name, in.Name, p.Backend.Service.Name)
					}
				}
			}
		}
		auths := map[string]*crd.TriggerAuthentication{}
		for _, a := range ofKind[*crd.TriggerAuthentication](ms) {
			auths[a.Name] = a
		}
		for _, so := range ofKind[*crd.ScaledObject](ms) {
			d := deployments[so.Spec.ScaleTargetRef.Name]
			if d == nil || d.Spec.Replicas != nil {
				t.Errorf("%s: ScaledObject %s targets %s, which is missing or fixes replicas", name, so.Name, so.Spec.ScaleTargetRef.Name)
				continue
			}
			for _, tr := range so.Spec.Triggers {
				if tr.AuthenticationRef == nil {
					continue
				}
				a := auths[tr.AuthenticationRef.Name]
				if a == nil {
					t.Errorf("%s: ScaledObject %s refers to missing TriggerAuthentication %s", name, so.Name, tr.AuthenticationRef.Name)
					continue
				}
				for _, e := range a.Spec.Env {
					c := d.Spec.Template.Spec.Containers[0]
					if c.Name != e.ContainerName || !slices.ContainsFunc(c.Env, func(v corev1.EnvVar) bool { return v.Name == e.Name }) {
						t.Errorf("%s: TriggerAuthentication %s reads %s from container %s, which lacks it", name, a.Name, e.Name, e.ContainerName)
					}
				}
			}
		}
		for _, sm := range ofKind[*monitoringv1.ServiceMonitor](ms) {
			n := 0
			for _, s := range services {
				if labels.SelectorFromSet(sm.Spec.Selector.MatchLabels).Matches(labels.Set(s.Labels)) {
					n++
					if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == sm.Spec.Endpoints[0].Port }) {
						t.Errorf("%s: Service %s has no port %s the ServiceMonitor scrapes", name, s.Name, sm.Spec.Endpoints[0].Port)
					}
				}
			}
			if n != len(services) {
				t.Errorf("%s: ServiceMonitor selects %d of %d Services", name, n, len(services))
			}
		}
	}
}

func loadTopology(t *testing.T) *topology.File {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var f topology.File
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// KEDA never scales a dispatcher past the partitions its group reads.
func TestKEDACappedAtPartitions(t *testing.T) {
	ms := rendered(t)["keda"]
	dev := loadTopology(t).Environments["dev"] // keda-values.yaml sets kafka.environment: dev
	sos := ofKind[*crd.ScaledObject](ms)
	if len(sos) != 2 {
		t.Fatalf("keda-values.yaml: %d ScaledObjects, want 2", len(sos))
	}
	want := map[string]int32{"hotel-saas": min(500, dev.Systems["hotel-saas"].GroupPartitions), "hotel-member": 6}
	for _, so := range sos {
		sys := so.Labels["hotelbus.io/system"]
		tr := so.Spec.Triggers[0]
		if got := *so.Spec.MaxReplicaCount; got != want[sys] {
			t.Errorf("%s: maxReplicaCount %d, want %d", sys, got, want[sys])
		}
		if *so.Spec.MaxReplicaCount > dev.Systems[sys].GroupPartitions {
			t.Errorf("%s: maxReplicaCount %d above the group's %d partitions", sys, *so.Spec.MaxReplicaCount, dev.Systems[sys].GroupPartitions)
		}
		if tr.Type != "kafka" || tr.Metadata["consumerGroup"] != dev.Systems[sys].Group || tr.Metadata["bootstrapServers"] != "kafka:9092" ||
			tr.Metadata["sasl"] != "scram_sha512" || tr.Metadata["tls"] != "enable" || tr.Metadata["lagThreshold"] == "" {
			t.Errorf("%s: kafka trigger %v", sys, tr.Metadata)
		}
	}
}

// Strimzi users get exactly the ACLs ownership gives them, on topics the release declares.
func TestStrimziUsersFollowOwnership(t *testing.T) {
	ms := rendered(t)["strimzi"]
	prod := loadTopology(t).Environments["prod"]
	topics := map[string]bool{}
	for _, kt := range ofKind[*crd.KafkaTopic](ms) {
		topics[kt.Spec.TopicName] = true
		if kt.Labels["strimzi.io/cluster"] != "events" || kt.Annotations["helm.sh/resource-policy"] != "keep" {
			t.Errorf("KafkaTopic %s: cluster label or keep policy missing", kt.Name)
		}
	}
	if len(topics) != len(prod.Topics) {
		t.Errorf("%d KafkaTopics, topology has %d", len(topics), len(prod.Topics))
	}
	users := map[string]*crd.KafkaUser{}
	for _, u := range ofKind[*crd.KafkaUser](ms) {
		users[u.Name] = u
		for _, a := range u.Spec.Authorization.ACLs {
			if a.Resource.Type == "topic" && a.Resource.PatternType == "literal" && !topics[a.Resource.Name] {
				t.Errorf("KafkaUser %s: ACL on topic %s that no KafkaTopic declares", u.Name, a.Resource.Name)
			}
		}
	}
	for sys, s := range prod.Systems {
		u := users[sys]
		if u == nil {
			t.Errorf("no KafkaUser for %s", sys)
			continue
		}
		if len(u.Spec.Authorization.ACLs) != len(s.ACLs) {
			t.Errorf("KafkaUser %s: %d ACLs, ownership gives %d", sys, len(u.Spec.Authorization.ACLs), len(s.ACLs))
		}
		for _, a := range u.Spec.Authorization.ACLs {
			if slices.Contains(a.Operations, "Write") && a.Resource.Type == "topic" {
				owner, kind := "", ""
				for _, tp := range prod.Topics {
					if tp.Name == a.Resource.Name {
						owner, kind = tp.Owner, tp.Kind
					}
				}
				// The audit log and the privacy key topic are written by every system.
				if owner != sys && kind != "audit" && kind != "keys" {
					t.Errorf("KafkaUser %s writes %s, owned by %q", sys, a.Resource.Name, owner)
				}
			}
		}
	}
	for _, d := range ofKind[*appsv1.Deployment](ms) {
		c := d.Spec.Template.Spec.Containers[0]
		user := ""
		for _, a := range c.Args {
			if u, ok := strings.CutPrefix(a, "--sasl-user="); ok {
				user = u
			}
		}
		if users[user] == nil {
			t.Errorf("Deployment %s authenticates as %q, not one of the KafkaUsers", d.Name, user)
		}
		for _, e := range c.Env {
			if e.Name == "HOTELBUS_KAFKA_PASSWORD" && (e.ValueFrom.SecretKeyRef.Name != user || e.ValueFrom.SecretKeyRef.Key != "password") {
				t.Errorf("Deployment %s: password from %s/%s, want the User Operator's Secret %s/password",
					d.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key, user)
			}
		}
	}
	for _, j := range ofKind[*batchv1.Job](ms) {
		cs := append(j.Spec.Template.Spec.InitContainers, j.Spec.Template.Spec.Containers...)
		if len(cs) != 1 || cs[0].Name != "schemas" {
			t.Errorf("with Strimzi topics the hook Job only registers schemas, got %d containers", len(cs))
		}
	}
}

// Every hotelbus container of the defaults runs the chart's default image (appVersion as the tag).
func TestImageDefaultsToAppVersion(t *testing.T) {
	want := chartDefaultImage(t)
	n := 0
	for _, p := range pods(rendered(t)["defaults"]) {
		for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
			if strings.HasPrefix(c.Image, "hotelbus/") {
				n++
				if c.Image != want {
					t.Errorf("%s %s: image %s, want %s", p.where, c.Name, c.Image, want)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no hotelbus container in the defaults")
	}
}

// Every hotelbus command line the chart renders is accepted by the binary: each flag exists and
// parses (the binary is asked for --help after them, so nothing runs).
func TestBinaryAcceptsRenderedCommands(t *testing.T) {
	bin := os.Getenv("HOTELBUS_CHART_BINARY")
	if bin == "" {
		if os.Getenv("HOTELBUS_TEST_REAL") == "1" {
			t.Fatal("HOTELBUS_CHART_BINARY is unset: run .ci/rig/helm.sh")
		}
		t.Skip("HOTELBUS_CHART_BINARY is unset: run .ci/rig/helm.sh")
	}
	seen := map[string]bool{}
	for name, ms := range rendered(t) {
		for _, p := range pods(ms) {
			for _, c := range append(slices.Clone(p.spec.InitContainers), p.spec.Containers...) {
				if !strings.Contains(c.Image, "hotelbus") {
					continue
				}
				key := strings.Join(c.Args, " ")
				if seen[key] {
					continue
				}
				seen[key] = true
				cmd := exec.Command(bin, append(slices.Clone(c.Args), "--help")...)
				cmd.Env = []string{"HOME=" + t.TempDir()}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("%s: %s %s: hotelbus %s: %v\n%s", name, p.where, c.Name, key, err, firstLines(out, 3))
				}
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no hotelbus command rendered")
	}
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
