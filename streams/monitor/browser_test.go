package monitor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// EnvArtifacts names a directory that receives a copy of the dashboard screenshot (the test's
// temporary directory is removed when it ends).
const EnvArtifacts = "HOTELBUS_TEST_ARTIFACTS"

// page drives one headless browser tab.
type page struct {
	t   *testing.T
	ctx context.Context
}

func openPage(t *testing.T, exe, url string) *page {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.WindowSize(1440, 1800))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to sandbox as root
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("opening the dashboard in %s: %v", exe, err)
	}
	return &page{t: t, ctx: ctx}
}

// js evaluates expression in the page.
func js[T any](p *page, expression string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		p.t.Fatalf("evaluating %s: %v", expression, err)
	}
	return v
}

// text returns the text of the first element sel selects ("" when none).
func (p *page) text(sel string) string {
	p.t.Helper()
	return js[string](p, fmt.Sprintf(`document.querySelector(%q)?.textContent ?? ""`, sel))
}

// waitText waits until the element sel selects shows want.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	p.waitJS(fmt.Sprintf("%s to show %q", sel, want), fmt.Sprintf(`document.querySelector(%q)?.textContent === %q`, sel, want), func() string {
		return fmt.Sprintf("it shows %q", p.text(sel))
	})
}

// waitJS waits until the expression is true in the page; state describes the page on failure.
func (p *page) waitJS(what, expression string, state func() string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, time.Minute)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expression, chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(time.Minute))); err != nil {
		p.t.Fatalf("waiting for %s: %v; %s", what, err, state())
	}
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// TestDashboardInBrowser opens the dashboard in headless Chromium and checks that what it shows
// follows the traffic: events published to hotel-pms' reservations topic raise hotel-pms'
// published count and rate and hotel-member's lag (its group committed offset 0 and consumes
// nothing), the tail lists them and filters them by tenant, dead letters appear with their class,
// the journey view shows an audited correlation id, and a commit brings the lag back to 0. It saves
// a screenshot under the test's temporary directory.
func TestDashboardInBrowser(t *testing.T) {
	exe := streamstest.Chromium(t)
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			topic := r.topicOf(t, "reservation.created")
			member := r.system(t, "hotel-member")
			r.commit(t, member.Group, topic, map[int32]int64{0: 0})
			_, srv := r.start(t, monitor.Config{Interval: 200 * time.Millisecond, RateWindow: 5 * time.Second})
			p := openPage(t, exe, srv.URL)

			sys := func(system, field string) string {
				return fmt.Sprintf(`#systems .system[data-system=%q] [data-field=%q]`, system, field)
			}
			p.waitJS("the event stream", `document.querySelector("#status").classList.contains("live")`, func() string { return p.text("#status") })
			if pub, lag := p.text(sys("hotel-pms", "published")), p.text(sys("hotel-member", "lag")); pub != "0" || lag != "0" {
				t.Fatalf("before any traffic: hotel-pms published %q, hotel-member lag %q; want 0 and 0", pub, lag)
			}

			// Traffic in two waves: the numbers on the page follow each.
			now := time.Now()
			for i := range 5 {
				r.produce(t, r.event(t, "reservation.created", "hotel-kyoto", fmt.Sprintf("corr-k%d", i), 0, now))
			}
			p.waitText(sys("hotel-pms", "published"), "5")
			p.waitText(sys("hotel-member", "lag"), "5")
			rate := p.text(sys("hotel-pms", "publishRate"))
			if v, err := strconv.ParseFloat(strings.TrimSuffix(rate, "/s"), 64); err != nil || v <= 0 {
				t.Errorf("hotel-pms publish rate shows %q after 5 events, want a positive rate", rate)
			}
			for i := range 6 {
				r.produce(t, r.event(t, "reservation.created", "hotel-kyoto", fmt.Sprintf("corr-k%d", 5+i), 0, time.Now()))
			}
			r.produce(t, r.event(t, "reservation.created", "hotel-osaka", "corr-o1", 0, time.Now()))
			p.waitText(sys("hotel-pms", "published"), "12")
			p.waitText(sys("hotel-member", "lag"), "12")
			partLag := fmt.Sprintf(`#groups tr[data-group=%q][data-topic=%q][data-partition="0"] [data-field="lag"]`, member.Group, topic)
			p.waitText(partLag, "12")
			edge := `#flow g.edge[data-from="hotel-pms"][data-to="hotel-member"]`
			p.waitJS("the hotel-pms -> hotel-member edge to show lag", fmt.Sprintf(`document.querySelector(%q)?.classList.contains("lagging")`, edge),
				func() string { return p.text(edge) })

			// The tail lists the twelve events from their headers, and filters by tenant.
			p.waitJS("12 tail rows", `document.querySelectorAll("#tail tbody tr").length === 12`, func() string { return p.text("#tail tbody") })
			p.do("filtering the tail", chromedp.SetValue(`#f-tenant`, "hotel-osaka"), chromedp.Click(`#tail-filter button[type=submit]`))
			p.waitJS("the tail filtered to hotel-osaka", `document.querySelectorAll("#tail tbody tr").length === 1 && document.querySelector("#tail tbody tr").textContent.includes("corr-o1")`,
				func() string { return p.text("#tail tbody") })
			p.do("clearing the filter", chromedp.Click(`#tail-filter button[type=reset]`))
			p.waitJS("the unfiltered tail", `document.querySelectorAll("#tail tbody tr").length === 12`, func() string { return p.text("#tail tbody") })

			// Dead letters appear with their error class.
			r.produce(t, r.deadLetter(t, "hotel-member", "permanent"), r.deadLetter(t, "hotel-member", "permanent"), r.deadLetter(t, "hotel-member", "decode"))
			p.waitText(`#deadletters .card[data-system="hotel-member"] [data-field="total"]`, "3")
			p.waitText(`#deadletters .card[data-system="hotel-member"] li[data-class="permanent"]`, "permanent: 2")
			p.waitText(sys("hotel-member", "deadLetters"), "3")

			// An audited journey: the tail switches to the audit log, the journey view shows it.
			t0 := time.Now().UTC().Truncate(time.Millisecond)
			r.produce(t,
				r.auditRecord(t, streams.AuditRecord{Kind: streams.AuditPublished, At: t0, System: "hotel-pms", Outcome: streams.OutcomePublished, EventID: "e-b1",
					EventType: "reservation.created", TenantID: "hotel-kyoto", CorrelationID: "corr-browser", Topic: topic, Partition: 0, Offset: 3}),
				r.auditRecord(t, streams.AuditRecord{Kind: streams.AuditHandled, At: t0.Add(18 * time.Millisecond), System: "hotel-member", Group: member.Group, Outcome: streams.OutcomeHandled,
					EventID: "e-b1", EventType: "reservation.created", TenantID: "hotel-kyoto", CorrelationID: "corr-browser", Topic: topic, Attempt: 1, LatencyMs: 18}))
			p.waitJS("the tail from the audit log", `document.querySelector("#tail-source").dataset.source === "audit"`, func() string { return p.text("#tail-source") })
			p.do("asking for the journey", chromedp.SetValue(`#j-corr`, "corr-browser"), chromedp.Click(`#j-go`))
			p.waitJS("the journey", `document.querySelectorAll('#journey .event[data-event-id="e-b1"] tr[data-outcome]').length === 3`,
				func() string { return p.text("#journey") })
			for _, want := range []string{`tr[data-system="hotel-pms"][data-outcome="published"]`, `tr[data-system="hotel-member"][data-outcome="handled"]`,
				`tr[data-system="hotel-common"][data-outcome="pending"]`} {
				if p.text(`#journey .event[data-event-id="e-b1"] `+want) == "" {
					t.Errorf("journey lacks %s: %s", want, p.text("#journey"))
				}
			}

			png, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			shot := filepath.Join(t.TempDir(), "dashboard-"+b.Name+".png")
			if err := os.WriteFile(shot, png, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("screenshot: %s (%d bytes)", shot, len(png))
			if dir := os.Getenv(EnvArtifacts); dir != "" {
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(shot)), png, 0o644); err != nil {
					t.Error(err)
				}
			}

			// hotel-member catches up: its lag goes back to 0 and its consumed count to 12.
			r.commit(t, member.Group, topic, map[int32]int64{0: 12})
			p.waitText(sys("hotel-member", "lag"), "0")
			p.waitText(sys("hotel-member", "consumed"), "12")
			p.waitText(partLag, "0")
		})
	}
}
