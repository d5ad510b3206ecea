package chart_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const repoRoot = "../../.."

// The image is one FROM scratch stage (nothing is pulled), taking the binary `make build` makes
// statically, runs as the user the chart's securityContext names, and starts hotelbus.
func TestDockerfileMatchesChart(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "hotelbus", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var froms, runs []string
	user, entrypoint := "", ""
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, strings.Join(f[1:], " "))
		case "RUN":
			runs = append(runs, sc.Text())
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
	}
	if !slices.Equal(froms, []string{"scratch"}) {
		t.Errorf("FROM %q, want one stage FROM scratch", froms)
	}
	if len(runs) > 0 {
		t.Errorf("RUN in an image without a shell: %q", runs)
	}
	if entrypoint != `["/usr/local/bin/hotelbus"]` {
		t.Errorf("ENTRYPOINT %s", entrypoint)
	}
	mk, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\tCGO_ENABLED=0 .*\$\(GO\) build -trimpath`).Match(mk) {
		t.Error("make build does not build with CGO_ENABLED=0 and -trimpath")
	}
	vb, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		PodSecurityContext struct {
			RunAsUser  int `json:"runAsUser"`
			RunAsGroup int `json:"runAsGroup"`
		} `json:"podSecurityContext"`
	}
	if err := yaml.Unmarshal(vb, &values); err != nil {
		t.Fatal(err)
	}
	want := strconv.Itoa(values.PodSecurityContext.RunAsUser) + ":" + strconv.Itoa(values.PodSecurityContext.RunAsGroup)
	if user != want || values.PodSecurityContext.RunAsUser == 0 {
		t.Errorf("Dockerfile USER %q, chart runs as %s", user, want)
	}
}

// `make image` builds the image the chart runs by default: values.yaml's image.repository with
// the chart's appVersion as the tag.
func TestMakeImageIsTheChartDefault(t *testing.T) {
	cmd := exec.Command("make", "-s", "--no-print-directory", "image-ref")
	cmd.Dir = repoRoot
	// The reference as `make image` computes it, not as this shell may override it.
	for _, e := range os.Environ() {
		if k, _, _ := strings.Cut(e, "="); k != "IMAGE" && k != "VERSION" && k != "MAKEFLAGS" {
			cmd.Env = append(cmd.Env, e)
		}
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make image-ref: %v", err)
	}
	if got, want := strings.TrimSpace(string(out)), chartDefaultImage(t); got != want {
		t.Errorf("make image builds %s, the chart's default image is %s", got, want)
	}
}

// chartAppVersion is Chart.yaml's appVersion.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml appVersion: %v", err)
	}
	return chart.AppVersion
}

// chartDefaultImage is the image reference the chart's values.yaml renders: image.repository and
// the appVersion, when values.yaml sets neither a tag nor a digest.
func chartDefaultImage(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Image struct{ Repository, Tag, Digest string } `json:"image"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil || values.Image.Repository == "" {
		t.Fatalf("values.yaml image.repository: %v", err)
	}
	if values.Image.Tag != "" || values.Image.Digest != "" {
		t.Fatalf("values.yaml pins image tag %q digest %q: the default is the appVersion", values.Image.Tag, values.Image.Digest)
	}
	return values.Image.Repository + ":" + chartAppVersion(t)
}

// Every query of the Grafana dashboard is valid PromQL (Grafana's variables substituted).
func TestDashboardQueriesParse(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$namespace", "hotelbus")
	p := parser.NewParser(parser.Options{})
	metric := regexp.MustCompile(`hotelbus_[a-z_]+`)
	n := 0
	for _, panel := range dash.Panels {
		for _, tg := range panel.Targets {
			n++
			if _, err := p.ParseExpr(vars.Replace(tg.Expr)); err != nil {
				t.Errorf("panel %q: %v", panel.Title, err)
			}
			if !metric.MatchString(tg.Expr) {
				t.Errorf("panel %q queries no hotelbus metric", panel.Title)
			}
		}
	}
	if dash.UID == "" || n == 0 {
		t.Fatalf("dashboard uid %q, %d queries", dash.UID, n)
	}
}
