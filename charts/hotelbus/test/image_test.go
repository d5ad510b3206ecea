package chart_test

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

const repoRoot = "../../.."

// The image runs as the user the chart's securityContext names, on a distroless or scratch base,
// from a static binary.
func TestDockerfileMatchesChart(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "hotelbus", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var froms []string
	user, entrypoint := "", ""
	static := false
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[len(f)-1])
			if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
				froms[len(froms)-1] = f[len(f)-3]
			}
		case "USER":
			user = f[1]
		case "ENTRYPOINT":
			entrypoint = strings.Join(f[1:], " ")
		}
		if strings.Contains(sc.Text(), "CGO_ENABLED=0") {
			static = true
		}
	}
	if len(froms) < 2 {
		t.Fatalf("not multi-stage: FROM %v", froms)
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %s is neither distroless/static nor scratch", final)
	}
	if !static {
		t.Error("the binary is not built with CGO_ENABLED=0")
	}
	if !strings.Contains(entrypoint, "hotelbus") {
		t.Errorf("ENTRYPOINT %s", entrypoint)
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

// The ignore file lets in every directory the binary is built from, and nothing else of the repo.
func TestDockerignoreAdmitsTheBuild(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "cmd", "hotelbus", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "!"); ok {
			allowed[strings.TrimSuffix(p, "/")] = true
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", "./cmd/hotelbus")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a module from the module cache
		}
		n++
		if top := strings.Split(rel, string(filepath.Separator))[0]; !allowed[top] {
			t.Errorf("package dir %s is kept out of the build context", rel)
		}
	}
	if n == 0 || !allowed["go.mod"] || !allowed["go.sum"] {
		t.Errorf("%d repository packages; go.mod/go.sum admitted: %v %v", n, allowed["go.mod"], allowed["go.sum"])
	}
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
