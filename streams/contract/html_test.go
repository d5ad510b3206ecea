package contract_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

var linkRe = regexp.MustCompile(`(?i)\s(href|src)="([^"]*)"`)

// TestHTMLSiteIsSelfContained: the site loads nothing from elsewhere (no absolute URL, no script)
// and every link resolves to one of its files (and anchor); every event type has a page with a
// row per data field, pii marks on the marked fields; the index shows the envelope's fields.
func TestHTMLSiteIsSelfContained(t *testing.T) {
	k := load(t, "", nil)
	files, err := k.HTML()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		text := string(b)
		if strings.Contains(strings.ToLower(text), "<script") || strings.Contains(text, "@import") || strings.Contains(text, "url(") {
			t.Errorf("%s loads code or resources", name)
		}
		for _, m := range linkRe.FindAllStringSubmatch(text, -1) {
			target, anchor, _ := strings.Cut(m[2], "#")
			if strings.Contains(target, ":") || strings.HasPrefix(target, "/") {
				t.Errorf("%s: %s=%q leaves the site", name, m[1], m[2])
				continue
			}
			file := name
			if target != "" {
				file = path.Join(path.Dir(name), target)
			}
			dest, ok := files[file]
			if !ok {
				t.Errorf("%s: %s=%q names no file of the site", name, m[1], m[2])
			} else if anchor != "" && !strings.Contains(string(dest), `id="`+anchor+`"`) {
				t.Errorf("%s: %s=%q names no anchor of %s", name, m[1], m[2], file)
			}
		}
	}
	for _, et := range k.EventTypes {
		page := string(files["events/"+et.Name+".html"])
		for _, sub := range et.Subjects {
			for _, f := range sub.Latest().Data.Fields() {
				row := fmt.Sprintf(`<tr data-path="%s" class="depth0`, f.Name())
				if f.Prop("pii") == true {
					row += " pii"
				}
				if !strings.Contains(page, row+`">`) {
					t.Errorf("%s: no row %s", et.Name, row)
				}
			}
		}
	}
	if !strings.Contains(string(files["events/billing.paid.html"]), `<tr data-path="card.token" class="depth1 pii">`) {
		t.Error("billing.paid: card.token (marked in pii-marks.txt) is not shown as pii")
	}
	for _, row := range []string{`<tr data-path="eventId" class="depth0">`, `<tr data-path="metadata.userId" class="depth1 pii">`} {
		if !strings.Contains(string(files["index.html"]), row) {
			t.Errorf("index.html: the envelope lacks %s", row)
		}
	}
}

// TestHTMLCompatibilityHistory adds minor versions to billing.paid v1: an optional field (compatible)
// and a required one (incompatible at FULL_TRANSITIVE); the history table names the change and the
// verdict of each.
func TestHTMLCompatibilityHistory(t *testing.T) {
	base, err := fs.ReadFile(schemas.Embedded(), "events/billing.paid/v1/1.0.avsc")
	if err != nil {
		t.Fatal(err)
	}
	withField := func(b []byte, field string) string {
		var rec map[string]any
		var f any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal([]byte(field), &f)
		rec["fields"] = append(rec["fields"].([]any), f)
		out, _ := json.Marshal(rec)
		return string(out)
	}
	v11 := withField(base, `{"name": "tipNote", "type": ["null", "string"], "default": null, "doc": "Note on the tip."}`)
	v12 := withField([]byte(v11), `{"name": "terminalId", "type": "string", "doc": "Card terminal."}`)
	k := load(t, "", schemaTree(t, "", map[string]string{"events/billing.paid/v1/1.1.avsc": v11, "events/billing.paid/v1/1.2.avsc": v12}))
	files, err := k.HTML()
	if err != nil {
		t.Fatal(err)
	}
	page := string(files["events/billing.paid.html"])
	for _, want := range []string{
		`<tr data-version="1.0"><td>1.0</td><td><code>events/billing.paid/v1/1.0.avsc</code></td><td>first version</td><td>first version of the major</td></tr>`,
		`<tr data-version="1.1"><td>1.1</td><td><code>events/billing.paid/v1/1.1.avsc</code></td><td>added tipNote</td><td>compatible with 1.0 (FULL_TRANSITIVE)</td></tr>`,
		`<tr data-version="1.2"><td>1.2</td><td><code>events/billing.paid/v1/1.2.avsc</code></td><td>added terminalId</td><td>INCOMPATIBLE at FULL_TRANSITIVE<div class="problem">backward: the new schema cannot read data written with version 1.1`,
		`<tr data-path="terminalId" class="depth0">`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("billing.paid page lacks %s", want)
		}
	}
	if t.Failed() {
		i := strings.Index(page, `<table class="history">`)
		t.Logf("history table: %s", page[i:i+min(2000, len(page)-i)])
	}
}

// TestHTMLInBrowser opens the site in headless Chromium (as the dashboard's test does), served
// over HTTP: the index shows every system, flow, topic and event type and loads nothing but its
// own stylesheet; a click leads to billing.paid's page, which shows its fields with pii marks,
// examples and version history. Screenshots of both pages are saved (HOTELBUS_TEST_ARTIFACTS).
func TestHTMLInBrowser(t *testing.T) {
	exe := streamstest.Chromium(t)
	k := load(t, "", nil)
	dir := t.TempDir()
	if err := k.WriteHTML(dir); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	t.Cleanup(srv.Close)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(1440, 1800))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first action starts the browser, which lives as long as the context of that action.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	run := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		c, done := context.WithTimeout(ctx, time.Minute)
		defer done()
		if err := chromedp.Do(c, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(expr string) int {
		t.Helper()
		c, done := context.WithTimeout(ctx, 30*time.Second)
		defer done()
		n, err := chromedp.Run(c, chromedp.Evaluate[int](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return n
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s: %s (%d bytes)", name, artifact(t, name, png), len(png))
	}

	run("opening the catalog", chromedp.Navigate(srv.URL+"/index.html"), chromedp.WaitVisible(`#events`))
	flows := 0
	for _, from := range k.Catalog.Systems {
		for _, to := range k.Catalog.Systems {
			for _, et := range from.Publishes {
				if strings.Contains(strings.Join(to.Subscribes, " ")+" ", et+" ") {
					flows++
					break
				}
			}
		}
	}
	events := 0
	for _, tp := range k.Catalog.Topics {
		if tp.Kind == "events" {
			events++
		}
	}
	for expr, want := range map[string]int{
		`document.querySelectorAll("#systems .system").length`:                                             len(k.Catalog.Systems),
		`document.querySelectorAll("#flows tbody tr").length`:                                              flows,
		`document.querySelectorAll("#topics tbody tr").length`:                                             events,
		`document.querySelectorAll("#events tbody tr").length`:                                             len(k.EventTypes),
		`document.scripts.length`:                                                                          0,
		`document.styleSheets.length`:                                                                      1,
		`document.styleSheets[0].cssRules.length > 10 ? 1 : 0`:                                             1,
		`performance.getEntriesByType("resource").filter(r => !r.name.startsWith(location.origin)).length`: 0,
	} {
		if got := eval(expr); got != want {
			t.Errorf("%s = %d, want %d", expr, got, want)
		}
	}
	shot("catalog-index.png")

	run("following the link to billing.paid", chromedp.Click(`#events a[href="events/billing.paid.html"]`), chromedp.WaitVisible(`section#v1`))
	for expr, want := range map[string]int{
		`document.querySelectorAll('tr[data-path="card.token"].pii .badge').length`:                                  1,
		`document.querySelectorAll('tr[data-path="amount.amount"]').length`:                                          1,
		`document.querySelector('tr[data-path="amount.amount"] code.example').textContent === '"253840.00"' ? 1 : 0`: 1,
		`document.querySelectorAll('table.history tr[data-version="1.0"]').length`:                                   1,
		`document.querySelector('pre.example-json').textContent.includes('"billing.paid"') ? 1 : 0`:                  1,
		`performance.getEntriesByType("resource").filter(r => !r.name.startsWith(location.origin)).length`:           0,
	} {
		if got := eval(expr); got != want {
			t.Errorf("%s = %d, want %d", expr, got, want)
		}
	}
	shot("catalog-billing.paid.png")
}
