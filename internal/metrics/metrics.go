// Package metrics exposes the blog's Prometheus metrics: HTTP requests per
// route, and the health of every change consumer (lag, applied events,
// retries, dead letters, resyncs, lease holding).
package metrics

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"blog/internal/changes"
)

// Registry holds one process's metrics. It is passed in, never global, so
// tests and several services in one process do not collide.
type Registry struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	consumers *consumerCollector
}

// New returns a registry with the Go runtime and process collectors and the
// HTTP metrics registered.
func New() *Registry {
	r := &Registry{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blog_http_requests_total",
			Help: "HTTP requests answered, by service, route pattern, method and status code.",
		}, []string{"service", "route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "blog_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by service and route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"service", "route", "method"}),
	}
	r.consumers = &consumerCollector{}
	r.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		r.requests, r.latency, r.consumers)
	return r
}

// Observer returns the function a service's router calls after each request.
func (r *Registry) Observer(service string) func(route, method string, code int, took time.Duration) {
	return func(route, method string, code int, took time.Duration) {
		if route == "" {
			route = "unmatched"
		}
		method = knownMethod(method)
		r.requests.WithLabelValues(service, route, method, strconv.Itoa(code)).Inc()
		r.latency.WithLabelValues(service, route, method).Observe(took.Seconds())
	}
}

// knownMethod bounds the method label: a client may send any token as a
// method, and each new label value would be a new time series kept forever.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

// Handler serves the registry in Prometheus's text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{})
}

// Consumer adds a change consumer's metrics, read from its Stats at every
// scrape.
func (r *Registry) Consumer(name string, stats func() changes.Stats) {
	r.consumers.mu.Lock()
	defer r.consumers.mu.Unlock()
	r.consumers.list = append(r.consumers.list, namedStats{name, stats})
}

var (
	descLag = prometheus.NewDesc("blog_consumer_lag_seconds",
		"Now minus the commit time of the last applied event; 0 when the consumer has drained its feed.", []string{"consumer"}, nil)
	descApplied = prometheus.NewDesc("blog_consumer_events_applied_total",
		"Change events applied.", []string{"consumer"}, nil)
	descRetries = prometheus.NewDesc("blog_consumer_retries_total",
		"Retries of batches or events that failed to apply.", []string{"consumer"}, nil)
	descDead = prometheus.NewDesc("blog_consumer_dead_letters_total",
		"Events parked as dead letters after their retries failed.", []string{"consumer"}, nil)
	descResyncs = prometheus.NewDesc("blog_consumer_resyncs_total",
		"Read-model rebuilds after the feed's history was lost.", []string{"consumer"}, nil)
	descFailing = prometheus.NewDesc("blog_consumer_failing_seconds",
		"How long every apply or read of the consumer has failed since its last success; 0 while healthy. Past the stall threshold (15s) /readyz fails too.", []string{"consumer"}, nil)
	descLeader = prometheus.NewDesc("blog_consumer_lease_holder",
		"1 while this process holds the consumer's lease (or runs it without one), else 0.", []string{"consumer"}, nil)
)

// consumerCollector reports every added consumer under the same metric
// names, told apart by the consumer label.
type consumerCollector struct {
	mu   sync.Mutex
	list []namedStats
}

type namedStats struct {
	name  string
	stats func() changes.Stats
}

func (c *consumerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLag, descApplied, descRetries, descDead, descResyncs, descLeader, descFailing} {
		ch <- d
	}
}

func (c *consumerCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	list := c.list
	c.mu.Unlock()
	for _, n := range list {
		s := n.stats()
		leader := 0.0
		if s.Leader {
			leader = 1
		}
		ch <- prometheus.MustNewConstMetric(descLag, prometheus.GaugeValue, s.Lag.Seconds(), n.name)
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.CounterValue, float64(s.Applied), n.name)
		ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.Retries), n.name)
		ch <- prometheus.MustNewConstMetric(descDead, prometheus.CounterValue, float64(s.DeadLetters), n.name)
		ch <- prometheus.MustNewConstMetric(descResyncs, prometheus.CounterValue, float64(s.Resyncs), n.name)
		ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader, n.name)
		ch <- prometheus.MustNewConstMetric(descFailing, prometheus.GaugeValue, s.Failing.Seconds(), n.name)
	}
}
