package chart_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"sigs.k8s.io/yaml"
)

// ns is the namespace helm.sh renders the chart into; the rules select their own namespace.
const ns = `namespace="hotelbus"`

// alertCase is recorded series (promqltest "load 1m" syntax, from time 0) and whether the alert
// fires at the end, with which labels. Every alert needs a firing and a quiet case, so a rule that
// always or never fires fails.
type alertCase struct {
	name   string
	series string
	at     time.Duration
	fires  map[string]string // labels of the one firing alert; nil: must not fire
}

var alertCases = map[string][]alertCase{
	"HotelbusConsumerTimeLagHigh": {
		{"time lag 10m for 6m", `hotelbus_consumer_group_lag_seconds{` + ns + `,group="hotelbus.hotel-pms",topic="t",partition="0"} 0 0 600x10`,
			12 * time.Minute, map[string]string{"group": "hotelbus.hotel-pms", "severity": "critical"}},
		{"time lag 10m for 3m only", `hotelbus_consumer_group_lag_seconds{` + ns + `,group="hotelbus.hotel-pms",topic="t",partition="0"} 0x8 600x3`,
			12 * time.Minute, nil},
		{"other namespace", `hotelbus_consumer_group_lag_seconds{namespace="other",group="g",topic="t",partition="0"} 600x12`,
			12 * time.Minute, nil},
	},
	"HotelbusConsumerLagGrowing": {
		{"lag +100/min for 25m", `hotelbus_consumer_group_lag{` + ns + `,group="hotelbus.hotel-member",topic="t",partition="3"} 0+100x25`,
			25 * time.Minute, map[string]string{"group": "hotelbus.hotel-member", "severity": "warning"}},
		{"lag high but shrinking", `hotelbus_consumer_group_lag{` + ns + `,group="hotelbus.hotel-member",topic="t",partition="3"} 5000-100x25`,
			25 * time.Minute, nil},
	},
	"HotelbusDeadLetters": {
		{"3 dead letters", `hotelbus_dead_letters_total{` + ns + `,group="hotelbus.hotel-saas",error_class="permanent"} 0x5 3x5`,
			8 * time.Minute, map[string]string{"group": "hotelbus.hotel-saas", "error_class": "permanent", "severity": "warning"}},
		{"monitor sees records on the topic", `hotelbus_monitor_dead_letters{` + ns + `,system="hotel-member",error_class="decode"} 0x5 2x5`,
			8 * time.Minute, map[string]string{"system": "hotel-member", "error_class": "decode", "severity": "warning"}},
		{"counter and topic flat", `hotelbus_dead_letters_total{` + ns + `,group="hotelbus.hotel-saas",error_class="permanent"} 7x15
hotelbus_monitor_dead_letters{` + ns + `,system="hotel-saas",error_class="permanent"} 7x15`, 15 * time.Minute, nil},
	},
	"HotelbusConsumerGroupNotStable": {
		{"rebalancing for 15m", `hotelbus_consumer_group_state{` + ns + `,group="hotelbus.hotel-pms",state="PreparingRebalance"} 1x15`,
			15 * time.Minute, map[string]string{"group": "hotelbus.hotel-pms", "state": "PreparingRebalance", "severity": "warning"}},
		{"stable", `hotelbus_consumer_group_state{` + ns + `,group="hotelbus.hotel-pms",state="Stable"} 1x15
hotelbus_consumer_group_state{` + ns + `,group="hotelbus.hotel-pms",state="PreparingRebalance"} 0x15`, 15 * time.Minute, nil},
	},
	"HotelbusConsumerGroupGone": {
		{"empty group", `hotelbus_consumer_group_state{` + ns + `,group="hotelbus.hotel-common",state="Empty"} 1x10`,
			10 * time.Minute, map[string]string{"group": "hotelbus.hotel-common", "severity": "critical"}},
		{"no members", `hotelbus_consumer_group_members{` + ns + `,group="hotelbus.hotel-common"} 2 2 0x10`,
			12 * time.Minute, map[string]string{"group": "hotelbus.hotel-common", "severity": "critical"}},
		{"members present", `hotelbus_consumer_group_members{` + ns + `,group="hotelbus.hotel-common"} 3x10
hotelbus_consumer_group_state{` + ns + `,group="hotelbus.hotel-common",state="Stable"} 1x10`, 10 * time.Minute, nil},
	},
	"HotelbusDispatcherCircuitOpen": {
		{"open and probing for 5m", `hotelbus_dispatch_circuit_state{` + ns + `,system="hotel-pms",target="https://pms/",pod="p"} 0 1 2 1 2 1`,
			6 * time.Minute, map[string]string{"system": "hotel-pms", "severity": "critical"}},
		{"opened for 1m", `hotelbus_dispatch_circuit_state{` + ns + `,system="hotel-pms",target="https://pms/",pod="p"} 0x5 1`,
			6 * time.Minute, nil},
	},
	"HotelbusGatewayErrorRate": {
		{"10% 5xx", `hotelbus_gateway_requests_total{` + ns + `,route="/v1/events",code="202"} 0+90x15
hotelbus_gateway_requests_total{` + ns + `,route="/v1/events",code="503"} 0+10x15`,
			15 * time.Minute, map[string]string{"severity": "critical"}},
		{"1% 5xx", `hotelbus_gateway_requests_total{` + ns + `,route="/v1/events",code="202"} 0+99x15
hotelbus_gateway_requests_total{` + ns + `,route="/v1/events",code="500"} 0+1x15`, 15 * time.Minute, nil},
	},
	"HotelbusGatewayCredentialsStale": {
		{"stale for 5m", `hotelbus_gateway_credentials_stale{` + ns + `,pod="gw-1"} 0 0 1x5
hotelbus_gateway_credential_reload_failures_total{` + ns + `,pod="gw-1"} 0 0 1x5`,
			7 * time.Minute, map[string]string{"pod": "gw-1", "severity": "critical"}},
		{"loaded again", `hotelbus_gateway_credentials_stale{` + ns + `,pod="gw-1"} 1x3 0x20
hotelbus_gateway_credential_reload_failures_total{` + ns + `,pod="gw-1"} 0 1x22`,
			23 * time.Minute, nil},
	},
	"HotelbusSpoolNotDraining": {
		{"oldest 20m", `hotelbus_spool_oldest_age_seconds{` + ns + `,system="hotel-pms",pod="gw-1"} 0+60x20`,
			20 * time.Minute, map[string]string{"system": "hotel-pms", "pod": "gw-1", "severity": "critical"}},
		{"draining", `hotelbus_spool_oldest_age_seconds{` + ns + `,system="hotel-pms",pod="gw-1"} 0+60x5 0x15`,
			20 * time.Minute, nil},
	},
	"HotelbusTargetDown": {
		{"gateway pod down", `up{` + ns + `,service="hotelbus-gateway",pod="gw-1"} 1 0x8`,
			9 * time.Minute, map[string]string{"service": "hotelbus-gateway", "pod": "gw-1", "severity": "warning"}},
		{"other release down", `up{` + ns + `,service="other-gateway",pod="o-1"} 0x8`, 8 * time.Minute, nil},
	},
	"HotelbusDedupRedisUnavailable": {
		{"failing for 6m", `hotelbus_dedup_redis_failures_total{` + ns + `,group="hotelbus.hotel-pms",pod="d-1"} 0x3 0+12x6`,
			10 * time.Minute, map[string]string{"group": "hotelbus.hotel-pms", "severity": "critical"}},
		{"a failover: failures within one minute", `hotelbus_dedup_redis_failures_total{` + ns + `,group="hotelbus.hotel-pms",pod="d-1"} 0x3 6x6`,
			10 * time.Minute, nil},
	},
	"HotelbusDedupKeysLost": {
		{"2 leases lost", `hotelbus_dedup_keys_lost_total{` + ns + `,group="hotelbus.hotel-common",pod="d-1"} 0x3 2x3`,
			5 * time.Minute, map[string]string{"group": "hotelbus.hotel-common", "severity": "warning"}},
		{"none lost", `hotelbus_dedup_keys_lost_total{` + ns + `,group="hotelbus.hotel-common",pod="d-1"} 0x8`, 8 * time.Minute, nil},
	},
	"HotelbusPrivacyKeyTopicMisconfigured": {
		{"retention set on the key topic", `hotelbus_privacy_key_topic_issues{` + ns + `,pod="m-1"} 0x2 1x8`,
			10 * time.Minute, map[string]string{"namespace": "hotelbus", "severity": "critical"}},
		{"right, then a blip shorter than 5m", `hotelbus_privacy_key_topic_issues{` + ns + `,pod="m-1"} 0x5 1x2 0x3`, 10 * time.Minute, nil},
	},
}

// prometheusRule returns the PrometheusRule rendered with monitoring-values.yaml.
func prometheusRule(t *testing.T) *monitoringv1.PrometheusRule {
	t.Helper()
	prs := ofKind[*monitoringv1.PrometheusRule](rendered(t)["monitoring"])
	if len(prs) != 1 {
		t.Fatalf("monitoring-values.yaml renders %d PrometheusRules, want 1", len(prs))
	}
	return prs[0]
}

// The groups pass Prometheus's own rule-file validation (what the operator's admission webhook and
// promtool check rules run): PromQL, durations, label names, annotation templates.
func TestPrometheusRuleIsValidRuleFile(t *testing.T) {
	pr := prometheusRule(t)
	b, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	if _, errs := rulefmt.Parse(b, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler)); len(errs) > 0 {
		t.Fatalf("rule file invalid: %v", errs)
	}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Labels["severity"] != "critical" && r.Labels["severity"] != "warning" {
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			anchor := "#" + strings.ToLower(r.Alert)
			if !strings.HasSuffix(r.Annotations["runbook_url"], anchor) {
				t.Errorf("%s: runbook_url %q does not link to %s", r.Alert, r.Annotations["runbook_url"], anchor)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary and description are required", r.Alert)
			}
		}
	}
}

// Each alert's expression is evaluated like Prometheus's rule manager does (every minute, with the
// rule's for:) against recorded series.
func TestAlertsFireOnRecordedSeries(t *testing.T) {
	pr := prometheusRule(t)
	p := parser.NewParser(parser.Options{})
	seen := map[string]bool{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			cases := alertCases[r.Alert]
			if !slices.ContainsFunc(cases, func(c alertCase) bool { return c.fires != nil }) ||
				!slices.ContainsFunc(cases, func(c alertCase) bool { return c.fires == nil }) {
				t.Errorf("%s: needs a firing and a quiet case in alertCases", r.Alert)
				continue
			}
			expr, err := p.ParseExpr(r.Expr.String())
			if err != nil {
				t.Errorf("%s: %v", r.Alert, err)
				continue
			}
			var hold time.Duration
			if r.For != nil {
				d, err := model.ParseDuration(string(*r.For))
				if err != nil {
					t.Fatalf("%s: for: %v", r.Alert, err)
				}
				hold = time.Duration(d)
			}
			for _, c := range cases {
				t.Run(r.Alert+"/"+c.name, func(t *testing.T) {
					firing := evalAlert(t, r.Alert, expr, hold, labels.FromMap(r.Labels), c)
					switch {
					case c.fires == nil && len(firing) > 0:
						t.Errorf("fires: %v", firing)
					case c.fires != nil && len(firing) != 1:
						t.Errorf("%d alerts firing, want 1: %v", len(firing), firing)
					case c.fires != nil:
						for k, v := range c.fires {
							if got := firing[0].Get(k); got != v {
								t.Errorf("label %s = %q, want %q (alert %v)", k, got, v, firing[0])
							}
						}
					}
				})
			}
		}
	}
	for name := range alertCases {
		if !seen[name] {
			t.Errorf("alertCases has %s, which the PrometheusRule lacks", name)
		}
	}
}

// evalAlert loads c.series, evaluates the rule every minute up to c.at and returns the labels of
// the alerts firing then.
func evalAlert(t *testing.T, name string, expr parser.Expr, hold time.Duration, lbls labels.Labels, c alertCase) []labels.Labels {
	storage := promqltest.LoadedStorage(t, "load 1m\n"+indent(c.series))
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	rule := rules.NewAlertingRule(name, expr, hold, 0, lbls, labels.EmptyLabels(), labels.EmptyLabels(), "", false,
		slog.New(slog.DiscardHandler))
	query := rules.EngineQueryFunc(engine, storage)
	for ts := time.Duration(0); ts <= c.at; ts += time.Minute {
		if _, err := rule.Eval(context.Background(), 0, time.Unix(0, 0).Add(ts), query, nil, 0); err != nil {
			t.Fatalf("eval at %v: %v", ts, err)
		}
	}
	var out []labels.Labels
	for _, a := range rule.ActiveAlerts() {
		if a.State == rules.StateFiring {
			out = append(out, a.Labels)
		}
	}
	return out
}

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}
