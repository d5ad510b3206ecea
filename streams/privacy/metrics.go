package privacy

import "github.com/prometheus/client_golang/prometheus"

// Collector returns the Protector's Prometheus metrics, read from its counters at each scrape. No
// label carries a tenant, a subject or a key id; no value is key material.
//
//	hotelbus_privacy_keys                            live data keys known to this process
//	hotelbus_privacy_keys_created_total              data keys this process created
//	hotelbus_privacy_erasures_total                  subjects this process erased (Forget)
//	hotelbus_privacy_keys_rewrapped_total            data keys this process re-wrapped (Rewrap)
//	hotelbus_privacy_key_cache_total{result}         hit | miss of the unwrapped-key cache
//	hotelbus_privacy_key_unwraps_total               KMS unwraps
//	hotelbus_privacy_key_records_malformed_total     key topic records that did not parse
//	hotelbus_privacy_values_total{op}                sealed | opened | erased string values
func (p *Protector) Collector() prometheus.Collector { return collector{p} }

type collector struct{ p *Protector }

var (
	descKeys      = prometheus.NewDesc("hotelbus_privacy_keys", "Live data keys known to this process.", nil, nil)
	descCreated   = prometheus.NewDesc("hotelbus_privacy_keys_created_total", "Data keys this process created.", nil, nil)
	descErasures  = prometheus.NewDesc("hotelbus_privacy_erasures_total", "Subjects this process erased.", nil, nil)
	descRewrapped = prometheus.NewDesc("hotelbus_privacy_keys_rewrapped_total", "Data keys this process re-wrapped under a new KEK.", nil, nil)
	descCache     = prometheus.NewDesc("hotelbus_privacy_key_cache_total", "Lookups of the unwrapped-key cache.", []string{"result"}, nil)
	descUnwraps   = prometheus.NewDesc("hotelbus_privacy_key_unwraps_total", "Data keys unwrapped by the KMS.", nil, nil)
	descMalformed = prometheus.NewDesc("hotelbus_privacy_key_records_malformed_total", "Key topic records that did not parse.", nil, nil)
	descValues    = prometheus.NewDesc("hotelbus_privacy_values_total", "String values sealed, opened, or read as erased.", []string{"op"}, nil)
)

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descKeys, descCreated, descErasures, descRewrapped, descCache, descUnwraps, descMalformed, descValues} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.keys.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(s.Live))
	counter(descCreated, s.KeysCreated)
	counter(descErasures, s.Erasures)
	counter(descRewrapped, s.Rewrapped)
	counter(descCache, s.CacheHits, "hit")
	counter(descCache, s.CacheMisses, "miss")
	counter(descUnwraps, s.Unwraps)
	counter(descMalformed, s.Malformed)
	sealed, opened, erased := c.p.Counts()
	counter(descValues, sealed, "sealed")
	counter(descValues, opened, "opened")
	counter(descValues, erased, "erased")
}
