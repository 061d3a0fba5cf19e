package metrics

import "github.com/prometheus/client_golang/prometheus"

// DNSLookups is one target group's DNS discovery, as CountDNSLookups reads
// it (package discovery's Status, which this package does not import).
type DNSLookups struct {
	Group             string
	Lookups, Failures uint64
	Failing           bool // the last lookup failed
	Targets           int  // the last answer's targets
}

var (
	dnsLookupsDesc  = desc("dns_lookups_total", "DNS discovery lookups (a change of the group's discovery settings starts the count anew).", grp...)
	dnsFailuresDesc = desc("dns_lookup_failures_total", "DNS discovery lookups that failed (no answer, SERVFAIL, REFUSED): the group kept the last answer's targets.", grp...)
	dnsFailingDesc  = desc("dns_lookup_failing", "1 while a group's last DNS discovery lookup failed, else 0.", grp...)
	dnsTargetsDesc  = desc("dns_targets", "The targets of a group's last DNS discovery answer.", grp...)
)

// CountDNSLookups adds latch_dns_lookups_total,
// latch_dns_lookup_failures_total, latch_dns_lookup_failing and
// latch_dns_targets, by target group, read from status at each scrape:
// discovery runs beside the request path, which pays nothing for them.
func (m *Metrics) CountDNSLookups(status func() []DNSLookups) {
	m.reg.MustRegister(dnsCollector(status))
}

type dnsCollector func() []DNSLookups

func (c dnsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dnsLookupsDesc, dnsFailuresDesc, dnsFailingDesc, dnsTargetsDesc} {
		ch <- d
	}
}

func (c dnsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c() {
		failing := 0.0
		if s.Failing {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(dnsLookupsDesc, prometheus.CounterValue, float64(s.Lookups), s.Group)
		ch <- prometheus.MustNewConstMetric(dnsFailuresDesc, prometheus.CounterValue, float64(s.Failures), s.Group)
		ch <- prometheus.MustNewConstMetric(dnsFailingDesc, prometheus.GaugeValue, failing, s.Group)
		ch <- prometheus.MustNewConstMetric(dnsTargetsDesc, prometheus.GaugeValue, float64(s.Targets), s.Group)
	}
}
