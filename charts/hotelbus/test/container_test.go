package chart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// Environment of the container test (set by .ci/rig/image.sh).
const (
	// envImage is the reference of the image under test, as `make image` printed it.
	envImage = "HOTELBUS_IMAGE"
	// envHelm is the helm binary that renders the chart (helm.sh --build-only prints it).
	envHelm = "HOTELBUS_HELM"
	// envPodman replaces the podman command prefix (space separated), default podmanDefault.
	envPodman = "HOTELBUS_PODMAN"
	// envPortBase makes the test serve on ports base and base+1 instead of free ones.
	envPortBase = "HOTELBUS_IMAGE_PORT_BASE"
)

// signingSecret names the dispatcher's signing Secret, which the test provides (secretDirs).
const signingSecret = "member-hook"

// podmanDefault is how podman runs containers in sandboxes without systemd, which refuse crun's
// defaults and the default rlimits.
var podmanDefault = []string{"podman", "--cgroup-manager=cgroupfs"}

// podmanRunFlags follow `run` in every podman run.
var podmanRunFlags = []string{"--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"}

// imageLabels are the OCI labels the image carries (cmd/hotelbus/Dockerfile).
var imageLabels = []string{"org.opencontainers.image.source", "org.opencontainers.image.revision",
	"org.opencontainers.image.version", "org.opencontainers.image.licenses"}

// The image `make image` built, run with podman the way the chart's pods run it: the chart's
// default image reference, the user, read-only root filesystem, dropped capabilities, arguments,
// environment and volumes of the rendered setup Job, gateway and dispatcher, on the host network
// against the rig's Kafka and Redis and an embedded schema registry. The image's labels and
// `hotelbus version` name the checked-out commit; the gateway and the dispatcher answer their
// probes; an event published to the containerised gateway reaches a receiver through the
// containerised dispatcher; SIGTERM stops both within the pod's terminationGracePeriodSeconds.
func TestImage(t *testing.T) {
	ref := os.Getenv(envImage)
	if ref == "" {
		t.Skipf("%s is unset: the container test runs in `make test` (.ci/rig/image.sh)", envImage)
	}
	helm := os.Getenv(envHelm)
	brokers, redisURL := os.Getenv(streamstest.EnvBrokers), os.Getenv(streamstest.EnvRedis)
	if helm == "" || brokers == "" || redisURL == "" {
		t.Fatalf("%s needs %s, %s and %s (run .ci/rig/image.sh with the rig up)", envImage, envHelm, streamstest.EnvBrokers, streamstest.EnvRedis)
	}
	appVersion, commit := chartAppVersion(t), gitHead(t)
	if want := chartDefaultImage(t); ref != want {
		t.Errorf("the image under test is %s, the chart's default image is %s", ref, want)
	}

	t.Run("labels", func(t *testing.T) {
		var img []struct {
			Size   int64
			Labels map[string]string
			Config struct{ User string }
		}
		if err := json.Unmarshal(podman(t, "image", "inspect", ref), &img); err != nil || len(img) != 1 {
			t.Fatalf("podman image inspect %s: %v", ref, err)
		}
		t.Logf("image %s: %.1f MB, user %s", ref, float64(img[0].Size)/1e6, img[0].Config.User)
		for _, k := range imageLabels {
			t.Logf("  %s=%s", k, img[0].Labels[k])
			if img[0].Labels[k] == "" {
				t.Errorf("label %s is missing", k)
			}
		}
		if got := img[0].Labels["org.opencontainers.image.revision"]; got != commit {
			t.Errorf("revision label %q, checked out %s", got, commit)
		}
		if got := img[0].Labels["org.opencontainers.image.version"]; got != appVersion {
			t.Errorf("version label %q, the chart's appVersion %s", got, appVersion)
		}
		if img[0].Config.User != "65532:65532" {
			t.Errorf("image user %q, want 65532:65532", img[0].Config.User)
		}
	})

	rcv := newReceiver(t)
	ms := renderForContainers(t, helm, brokers, redisURL, rcv.srv.URL)
	pods := podsByComponent(t, ms)
	secrets := secretDirs(t, ms)

	t.Run("version", func(t *testing.T) {
		p := pods["gateway"]
		out := podman(t, append(runArgs(t, ref, p.spec, p.spec.Containers[0], "", secrets), "version", "--json")...)
		var v struct{ Version, Commit string }
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("hotelbus version --json: %v\n%s", err, out)
		}
		t.Logf("hotelbus version --json in the container: %s", bytes.Join(bytes.Fields(out), []byte(" ")))
		if v.Commit != commit || v.Version != appVersion {
			t.Errorf("version %s commit %s, want %s and %s", v.Version, v.Commit, appVersion, commit)
		}
	})

	// The setup Job's containers in order (topics apply, schemas register), each to a clean exit.
	setup := pods["setup"]
	for _, c := range append(slices.Clone(setup.spec.InitContainers), setup.spec.Containers...) {
		start := time.Now()
		podman(t, append(runArgs(t, ref, setup.spec, c, "", secrets), c.Args...)...)
		t.Logf("setup Job, container %s (hotelbus %s): done in %v", c.Name, strings.Join(c.Args[:2], " "), time.Since(start).Round(time.Millisecond))
	}

	gw := startPod(t, ref, "gateway", pods["gateway"], secrets)
	disp := startPod(t, ref, "dispatch", pods["dispatch"], secrets)
	gw.waitProbes(t)
	disp.waitProbes(t)

	id := publish(t, gw, ms)
	rcv.wait(t, id, time.Minute)

	for _, c := range []*container{gw, disp} {
		c.terminate(t)
	}
}

// receiver is the dispatcher's target: it records the headers of every delivery by ce-id and
// answers 204.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got map[string]http.Header
}

// newReceiver serves a receiver on loopback until the test ends.
func newReceiver(t *testing.T) *receiver {
	d := &receiver{got: map[string]http.Header{}}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		d.mu.Lock()
		d.got[r.Header.Get("ce-id")] = r.Header.Clone()
		d.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

// wait fails t unless eventID is delivered within timeout.
func (d *receiver) wait(t *testing.T, eventID string, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	for time.Since(start) < timeout {
		d.mu.Lock()
		h, ok := d.got[eventID]
		d.mu.Unlock()
		if ok {
			t.Logf("delivered to the receiver after %v: ce-id %s, ce-type %s, ce-source %s", time.Since(start).Round(time.Millisecond),
				eventID, h.Get("ce-type"), h.Get("ce-source"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("event %s was not delivered within %v", eventID, timeout)
}

// renderForContainers renders the chart's defaults with one dispatcher (hotel-member, to
// target), the rig's Kafka and Redis, an embedded schema registry and ports that are free on the
// host network. Its topics and groups carry a kafka.topicPrefix of this run's own, as every test
// sharing the rig names its topics (the setup Job's topics apply and schemas register take it too).
func renderForContainers(t *testing.T, helm, brokers, redisURL, target string) []manifest {
	t.Helper()
	_, regURL := streamstest.Registry(t)
	gwPort, dispPort := ports(t)
	set := []string{
		"kafka.bootstrap=" + brokers,
		"kafka.environment=test",
		"kafka.topicPrefix=" + strings.ToLower(streamstest.Name(t, "img")) + ".", // the chart allows [a-z0-9.-]
		"registry.url=" + regURL,
		"redis.url=" + redisURL,
		"gateway.port=" + strconv.Itoa(gwPort),
		"monitor.enabled=false",
		"dispatchers[0].system=hotel-member",
		"dispatchers[0].target=" + target + "/hooks/hotelbus",
		"dispatchers[0].signingSecret.name=" + signingSecret,
		"dispatchers[0].signingSecret.key=secret",
		"dispatchers[0].port=" + strconv.Itoa(dispPort),
	}
	args := []string{"template", "hotelbus", chartDir, "--namespace", "hotelbus"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := exec.Command(helm, args...).Output()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderrOf(err))
	}
	ms, err := decodeAll(out)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// ports returns the gateway's and the dispatcher's port: envPortBase and the next, or free ones.
func ports(t *testing.T) (int, int) {
	t.Helper()
	if s := os.Getenv(envPortBase); s != "" {
		base, err := strconv.Atoi(s)
		if err != nil || base < 1024 || base > 65534 {
			t.Fatalf("%s=%q: want a port number 1024..65534", envPortBase, s)
		}
		return base, base + 1
	}
	var p [2]int
	for i := range p {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p[i] = ln.Addr().(*net.TCPAddr).Port
		defer ln.Close()
	}
	return p[0], p[1]
}

// podsByComponent returns the pod templates by their app.kubernetes.io/component label.
func podsByComponent(t *testing.T, ms []manifest) map[string]pod {
	t.Helper()
	out := map[string]pod{}
	for _, d := range ofKind[*appsv1.Deployment](ms) {
		out[d.Spec.Template.Labels["app.kubernetes.io/component"]] = pod{"Deployment " + d.Name, d.Spec.Template.Spec, d.Spec.Template.Labels, true, nil}
	}
	for _, j := range ofKind[*batchv1.Job](ms) {
		out[j.Spec.Template.Labels["app.kubernetes.io/component"]] = pod{"Job " + j.Name, j.Spec.Template.Spec, j.Spec.Template.Labels, false, nil}
	}
	for _, c := range []string{"setup", "gateway", "dispatch"} {
		if _, ok := out[c]; !ok {
			t.Fatalf("no %s pod rendered", c)
		}
	}
	return out
}

// secretDirs writes every Secret the pods mount as files in a directory of its own, as the
// kubelet does: the rendered ones (the gateway's generated credentials) and the dispatcher's
// signing secret, which the chart expects to exist. Directories are 0755 and files 0644 (the
// default mode of secret volumes), so that the container's user reads them.
func secretDirs(t *testing.T, ms []manifest) map[string]string {
	t.Helper()
	data := map[string]map[string][]byte{signingSecret: {"secret": []byte("container-test-signing-secret-0123456789\n")}}
	for _, s := range ofKind[*corev1.Secret](ms) {
		data[s.Name] = map[string][]byte{}
		for k, v := range s.Data {
			data[s.Name][k] = v
		}
		for k, v := range s.StringData {
			data[s.Name][k] = []byte(v)
		}
	}
	out := map[string]string{}
	for name, files := range data {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for k, v := range files {
			if err := os.WriteFile(filepath.Join(dir, k), v, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
			t.Fatal(err)
		}
		out[name] = dir
	}
	return out
}

// runArgs translates one container of a pod template into podman run arguments: the security
// context (user and group, read-only root, dropped capabilities, no privilege escalation), the
// environment, the volumes (emptyDir as a tmpfs of the pod's user and fsGroup, Secrets from
// secretDirs) and the host network, ending with the image: the arguments for its entrypoint
// follow. name "" runs it in the foreground and removes it afterwards; otherwise it is detached
// under that name.
func runArgs(t *testing.T, ref string, spec corev1.PodSpec, c corev1.Container, name string, secrets map[string]string) []string {
	t.Helper()
	if c.Image != ref {
		t.Errorf("container %s: image %s, testing %s", c.Name, c.Image, ref)
	}
	if len(c.Command) > 0 {
		t.Fatalf("container %s sets command %v: the chart relies on the image's entrypoint", c.Name, c.Command)
	}
	args := append([]string{"run"}, podmanRunFlags...)
	if name == "" {
		args = append(args, "--rm")
	} else {
		args = append(args, "--detach", "--name", name)
	}
	args = append(args, "--network", "host", "--pull", "never")
	psc, sc := spec.SecurityContext, c.SecurityContext
	if psc == nil || sc == nil || psc.RunAsUser == nil || psc.RunAsGroup == nil {
		t.Fatalf("container %s: no pod or container securityContext with runAsUser and runAsGroup", c.Name)
	}
	uid, gid := *psc.RunAsUser, *psc.RunAsGroup
	if sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		gid = *sc.RunAsGroup
	}
	args = append(args, "--user", fmt.Sprintf("%d:%d", uid, gid))
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		args = append(args, "--read-only", "--read-only-tmpfs=false")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	if sc.Capabilities != nil {
		for _, cp := range sc.Capabilities.Drop {
			args = append(args, "--cap-drop", string(cp))
		}
		for _, cp := range sc.Capabilities.Add {
			args = append(args, "--cap-add", string(cp))
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Fatalf("container %s: env %s comes from a reference, which this test does not resolve", c.Name, e.Name)
		}
		args = append(args, "--env", e.Name+"="+e.Value)
	}
	for _, m := range c.VolumeMounts {
		i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			t.Fatalf("container %s mounts volume %s, which the pod does not have", c.Name, m.Name)
		}
		switch v := spec.Volumes[i]; {
		case v.EmptyDir != nil:
			// Owned by the container's user and group (U), which must be the pod's fsGroup, and
			// writable by them only: what the kubelet's emptyDir gives this pod, no more.
			if psc.FSGroup == nil || *psc.FSGroup != gid {
				t.Fatalf("%s: fsGroup %v is not the container's group %d, which the test's tmpfs models", c.Name, psc.FSGroup, gid)
			}
			opt := "rw,nosuid,nodev,mode=0770,U"
			if v.EmptyDir.SizeLimit != nil {
				opt += ",size=" + strconv.FormatInt(v.EmptyDir.SizeLimit.Value(), 10)
			}
			args = append(args, "--tmpfs", m.MountPath+":"+opt)
		case v.Secret != nil:
			dir, ok := secrets[v.Secret.SecretName]
			if !ok {
				t.Fatalf("container %s mounts Secret %s, which the test has no content for", c.Name, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				if it.Key != it.Path {
					t.Fatalf("Secret %s: item %s mounted as %s: the test mounts keys under their own names", v.Secret.SecretName, it.Key, it.Path)
				}
			}
			args = append(args, "--volume", dir+":"+m.MountPath+":ro")
		default:
			t.Fatalf("container %s: volume %s is neither emptyDir nor Secret", c.Name, m.Name)
		}
	}
	return append(args, ref)
}

// container is one detached container of a Deployment's pod.
type container struct {
	name  string
	pod   pod
	ctr   corev1.Container
	port  int32 // the "http" containerPort, which the probes use
	start time.Time
}

// startPod starts the first container of p detached; it is removed when the test ends (its log
// shown when the test failed).
func startPod(t *testing.T, ref, component string, p pod, secrets map[string]string) *container {
	t.Helper()
	c := &container{name: "hotelbus-test-" + component + "-" + uuid.NewString()[:8], pod: p, ctr: p.spec.Containers[0]}
	for _, cp := range c.ctr.Ports {
		if cp.Name == "http" {
			c.port = cp.ContainerPort
		}
	}
	if c.port == 0 {
		t.Fatalf("%s: no port named http", p.where)
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := podmanCmd(context.Background(), "logs", "--tail", "40", c.name).CombinedOutput()
			t.Logf("--- podman logs %s (%s):\n%s", c.name, p.where, out)
		}
		// SIGTERM first: a dispatcher killed without leaving its group would hold the group's
		// partitions until its session times out.
		_ = podmanCmd(context.Background(), "rm", "--force", "--time", "10", c.name).Run()
	})
	podman(t, append(runArgs(t, ref, p.spec, c.ctr, c.name, secrets), c.ctr.Args...)...)
	c.start = time.Now()
	return c
}

// waitProbes waits until the liveness and the readiness probe's paths answer 200 on the probes'
// port, as the kubelet would ask them.
func (c *container) waitProbes(t *testing.T) {
	t.Helper()
	for _, pr := range []*corev1.Probe{c.ctr.LivenessProbe, c.ctr.ReadinessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Port.String() != "http" {
			t.Fatalf("%s: probes are not httpGet on the port named http", c.pod.where)
		}
	}
	cl := &http.Client{Timeout: 3 * time.Second}
	for _, path := range []string{c.ctr.LivenessProbe.HTTPGet.Path, c.ctr.ReadinessProbe.HTTPGet.Path} {
		url := fmt.Sprintf("http://127.0.0.1:%d%s", c.port, path)
		deadline := time.Now().Add(time.Minute)
		for {
			res, err := cl.Get(url)
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					t.Logf("%s: %s answered 200 %v after the start", c.pod.where, path, time.Since(c.start).Round(time.Millisecond))
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s did not answer 200 within a minute (last: %v)", c.pod.where, url, errOrStatus(res, err))
			}
			if st := strings.TrimSpace(string(podman(t, "container", "inspect", "--format", "{{.State.Status}}", c.name))); st != "running" {
				t.Fatalf("%s: the container is %s, %s never answered 200 (last: %v)", c.pod.where, st, url, errOrStatus(res, err))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

func errOrStatus(res *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return res.Status
}

// terminate sends SIGTERM and fails t unless the container exits cleanly within the pod's
// terminationGracePeriodSeconds, after which the kubelet would kill it.
func (c *container) terminate(t *testing.T) {
	t.Helper()
	if c.pod.spec.TerminationGracePeriodSeconds == nil {
		t.Fatalf("%s: no terminationGracePeriodSeconds", c.pod.where)
	}
	grace := time.Duration(*c.pod.spec.TerminationGracePeriodSeconds) * time.Second
	start := time.Now()
	podman(t, "kill", "--signal", "TERM", c.name)
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	out, err := podmanCmd(ctx, "wait", c.name).Output()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("%s: still running %v after SIGTERM (terminationGracePeriodSeconds %v)", c.pod.where, took.Round(time.Millisecond), grace)
	}
	if err != nil {
		t.Fatalf("%s: podman wait: %v\n%s", c.pod.where, err, stderrOf(err))
	}
	code := strings.TrimSpace(string(out))
	t.Logf("%s: SIGTERM -> exit %s in %v (grace %v)", c.pod.where, code, took.Round(time.Millisecond), grace)
	if code != "0" {
		t.Errorf("%s: exit status %s after SIGTERM, want 0", c.pod.where, code)
	}
}

// publish posts the golden reservation.created example (a new eventId) to the gateway as
// hotel-pms, with the token the chart generated, and returns the eventId it accepted.
func publish(t *testing.T, gw *container, ms []manifest) string {
	t.Helper()
	var token string
	for _, s := range ofKind[*corev1.Secret](ms) {
		if s.Labels["app.kubernetes.io/component"] == "gateway" {
			token = strings.TrimSpace(string(s.Data["hotel-pms"]))
		}
	}
	if token == "" {
		t.Fatal("the rendered gateway credentials have no hotel-pms token")
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "schemas", "events", "reservation.created", "v1", "example.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7()).String()
	ev["eventId"] = id
	ev["timestamp"] = time.Now().UTC().Format(time.RFC3339Nano)
	body, _ := json.Marshal(ev)
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/v1/events", gw.port), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("publish to the gateway: %v", err)
	}
	defer res.Body.Close()
	answer, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("publish to the gateway: %s\n%s", res.Status, answer)
	}
	t.Logf("published reservation.created %s through the gateway: %s %s", id, res.Status, bytes.TrimSpace(answer))
	return id
}

// podmanCmd is podman with args, prefixed by envPodman's words or podmanDefault.
func podmanCmd(ctx context.Context, args ...string) *exec.Cmd {
	p := podmanDefault
	if s := strings.Fields(os.Getenv(envPodman)); len(s) > 0 {
		p = s
	}
	return exec.CommandContext(ctx, p[0], append(slices.Clone(p[1:]), args...)...)
}

// podman runs podman with args and returns its standard output; it fails t with podman's
// standard error when it fails.
func podman(t *testing.T, args ...string) []byte {
	t.Helper()
	cmd := podmanCmd(context.Background(), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s%s", strings.Join(cmd.Args, " "), err, out, stderr.Bytes())
	}
	return out
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

// gitHead is the commit checked out, which `make image` stamps.
func gitHead(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	return strings.TrimSpace(string(out))
}
