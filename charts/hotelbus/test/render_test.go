package chart_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/hotelbus/hotelbus/charts/hotelbus/test/crd"
)

// chartDir is the chart, relative to this test module.
const chartDir = ".."

// manifest is one rendered document, decoded into its API type.
type manifest struct {
	source string // "# Source:" line helm writes
	kind   string
	name   string
	obj    any
}

// newObject returns a pointer to the Go type of apiVersion/kind, or nil for one the chart must not
// render.
func newObject(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}
	case "v1 Service":
		return &corev1.Service{}
	case "v1 Secret":
		return &corev1.Secret{}
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}
	case "v1 Pod":
		return &corev1.Pod{}
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}
	case "apps/v1 StatefulSet":
		return &appsv1.StatefulSet{}
	case "batch/v1 Job":
		return &batchv1.Job{}
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}
	case "networking.k8s.io/v1 Ingress":
		return &networkingv1.Ingress{}
	case "networking.k8s.io/v1 NetworkPolicy":
		return &networkingv1.NetworkPolicy{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1 PrometheusRule":
		return &monitoringv1.PrometheusRule{}
	case "keda.sh/v1alpha1 ScaledObject":
		return &crd.ScaledObject{}
	case "keda.sh/v1alpha1 TriggerAuthentication":
		return &crd.TriggerAuthentication{}
	case "kafka.strimzi.io/v1beta2 KafkaTopic":
		return &crd.KafkaTopic{}
	case "kafka.strimzi.io/v1beta2 KafkaUser":
		return &crd.KafkaUser{}
	}
	return nil
}

// renderedDir is where helm.sh wrote `helm template` of each ci values file.
func renderedDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HOTELBUS_CHART_RENDERED")
	if dir == "" {
		if os.Getenv("HOTELBUS_TEST_REAL") == "1" {
			t.Fatal("HOTELBUS_CHART_RENDERED is unset: run .ci/rig/helm.sh")
		}
		t.Skip("HOTELBUS_CHART_RENDERED is unset: run .ci/rig/helm.sh to render the chart")
	}
	return dir
}

// valuesFiles returns the names of charts/hotelbus/ci/<name>-values.yaml, sorted.
func valuesFiles(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(chartDir, "ci", "*-values.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no ci values files (%v)", err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), "-values.yaml"))
	}
	sort.Strings(names)
	return names
}

// rendered decodes every document helm rendered for each ci values file, strictly (decodeStrict):
// an unknown or duplicate field, a wrong type or an unexpected kind fails the test.
func rendered(t *testing.T) map[string][]manifest {
	t.Helper()
	dir := renderedDir(t)
	out := map[string][]manifest{}
	for _, name := range valuesFiles(t) {
		b, err := os.ReadFile(filepath.Join(dir, name+".yaml"))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ms, err := decodeAll(b)
		if err != nil {
			t.Fatalf("%s-values.yaml: %v", name, err)
		}
		out[name] = ms
	}
	return out
}

func decodeAll(b []byte) ([]manifest, error) {
	var out []manifest
	for _, doc := range splitDocs(b) {
		source := ""
		for _, line := range strings.Split(doc, "\n") {
			if s, ok := strings.CutPrefix(line, "# Source: "); ok {
				source = s
			}
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if tm.APIVersion == "" && tm.Kind == "" {
			if strings.TrimSpace(stripComments(doc)) != "" {
				return nil, fmt.Errorf("%s: a document without apiVersion and kind", source)
			}
			continue
		}
		obj := newObject(tm.APIVersion, tm.Kind)
		if obj == nil {
			return nil, fmt.Errorf("%s: unexpected %s %s", source, tm.APIVersion, tm.Kind)
		}
		if err := decodeStrict([]byte(doc), obj); err != nil {
			return nil, fmt.Errorf("%s: %s %s: %w", source, tm.APIVersion, tm.Kind, err)
		}
		if v, ok := obj.(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", source, tm.Kind, err)
			}
		}
		name := obj.(metav1.Object).GetName()
		if name == "" {
			return nil, fmt.Errorf("%s: %s without metadata.name", source, tm.Kind)
		}
		out = append(out, manifest{source: source, kind: tm.Kind, name: name, obj: obj})
	}
	return out, nil
}

// decodeStrict converts the YAML to JSON as kubectl and helm do before sending it (scalars keep
// their YAML types, whatever the Go field's type: a number where a string belongs is an error, as
// on the API server), refusing duplicate keys, then decodes it refusing unknown fields.
func decodeStrict(doc []byte, obj any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	return nil
}

func splitDocs(b []byte) []string {
	var docs []string
	var cur bytes.Buffer
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if strings.TrimRight(line, "\r\n") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
	}
	return append(docs, cur.String())
}

func stripComments(doc string) string {
	var keep []string
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// ofKind returns the manifests of one kind, typed.
func ofKind[T any](ms []manifest) []T {
	var out []T
	for _, m := range ms {
		if o, ok := m.obj.(T); ok {
			out = append(out, o)
		}
	}
	return out
}

// kinds counts the manifests per kind, as "Kind=N" sorted, for messages.
func kinds(ms []manifest) string {
	n := map[string]int{}
	for _, m := range ms {
		n[m.kind]++
	}
	var out []string
	for k, v := range n {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}
