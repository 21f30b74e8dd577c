//! Prometheus metrics owned by one proxy instance (not the process-global recorder, so several
//! proxies in one process, as in tests, keep separate counts).

use std::time::Duration;

use metrics::{Key, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

const REQUESTS: &str = "pmm_inference_requests_total";
const DURATION: &str = "pmm_inference_request_duration_seconds";
const QUEUE: &str = "pmm_inference_queue_depth";
const IN_FLIGHT: &str = "pmm_inference_in_flight";
const SHED: &str = "pmm_inference_shed_total";
const UPSTREAM_ERRORS: &str = "pmm_inference_upstream_errors_total";
const UPSTREAM_UP: &str = "pmm_inference_upstream_up";
const BREAKER_OPEN: &str = "pmm_inference_upstream_breaker_open";
const BREAKER_OPENS: &str = "pmm_inference_upstream_breaker_opens_total";
const TOKENS: &str = "pmm_inference_tokens_total";
const STREAMS: &str = "pmm_inference_streams_total";

static META: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// The proxy's metric set.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn key(name: &'static str, labels: &[(&'static str, &str)]) -> Key {
    Key::from_parts(
        name,
        labels
            .iter()
            .map(|(k, v)| Label::new(*k, (*v).to_owned()))
            .collect::<Vec<_>>(),
    )
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Fresh, empty metrics with latency histograms.
    pub fn new() -> Self {
        let buckets = [
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
        ];
        // Only fails on an empty bucket list, which the constant above is not; summaries
        // (the exporter's default) are the harmless fallback.
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.to_owned()), &buckets)
            .unwrap_or_else(|_| PrometheusBuilder::new())
            .build_recorder();
        let handle = recorder.handle();
        let describe: [(&'static str, Option<Unit>, &'static str); 11] = [
            (REQUESTS, None, "Front requests by route and status"),
            (
                DURATION,
                Some(Unit::Seconds),
                "Time to response headers by route",
            ),
            (QUEUE, None, "Requests waiting for a concurrency slot"),
            (IN_FLIGHT, None, "Requests holding a concurrency slot"),
            (SHED, None, "Requests rejected with 429 by the queue"),
            (
                UPSTREAM_ERRORS,
                None,
                "Upstream failures by upstream and reason",
            ),
            (UPSTREAM_UP, None, "1 while the upstream reports ready"),
            (
                BREAKER_OPEN,
                None,
                "1 while the upstream's circuit breaker is open",
            ),
            (
                BREAKER_OPENS,
                None,
                "Times the upstream's circuit breaker has opened",
            ),
            (TOKENS, None, "Tokens reported by upstreams by type"),
            (STREAMS, None, "Finished streams by outcome"),
        ];
        for (name, unit, help) in describe {
            recorder.describe_counter(name.into(), unit, SharedString::const_str(help));
        }
        Self { recorder, handle }
    }

    fn counter(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        self.recorder
            .register_counter(&key(name, labels), &META)
            .increment(by);
    }

    fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.recorder
            .register_gauge(&key(name, labels), &META)
            .set(value);
    }

    /// One finished front request.
    pub fn request(&self, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        self.counter(REQUESTS, &[("route", route), ("status", &status)], 1);
        self.recorder
            .register_histogram(&key(DURATION, &[("route", route)]), &META)
            .record(elapsed.as_secs_f64());
    }

    /// A request shed by the queue.
    pub fn shed(&self) {
        self.counter(SHED, &[], 1);
    }

    /// An upstream failure.
    pub fn upstream_error(&self, upstream: &str, reason: &'static str) {
        self.counter(
            UPSTREAM_ERRORS,
            &[("upstream", upstream), ("reason", reason)],
            1,
        );
    }

    /// Token usage reported by an upstream.
    pub fn tokens(&self, upstream: &str, prompt: u64, completion: u64) {
        self.counter(
            TOKENS,
            &[("upstream", upstream), ("type", "prompt")],
            prompt,
        );
        self.counter(
            TOKENS,
            &[("upstream", upstream), ("type", "completion")],
            completion,
        );
    }

    /// A stream ended (`done`, `upstream_error`, `idle_timeout`, `deadline`, `client_closed`).
    pub fn stream_finished(&self, upstream: &str, outcome: &'static str) {
        self.counter(STREAMS, &[("upstream", upstream), ("outcome", outcome)], 1);
    }

    /// Queue gauges.
    pub fn set_queue(&self, queued: usize, in_flight: usize) {
        self.gauge(QUEUE, &[], queued as f64);
        self.gauge(IN_FLIGHT, &[], in_flight as f64);
    }

    /// Upstream gauges, and how often its breaker has opened.
    pub fn set_upstream(&self, upstream: &str, up: bool, breaker_open: bool, opens: u64) {
        self.recorder
            .register_counter(&key(BREAKER_OPENS, &[("upstream", upstream)]), &META)
            .absolute(opens);
        self.gauge(
            UPSTREAM_UP,
            &[("upstream", upstream)],
            f64::from(u8::from(up)),
        );
        self.gauge(
            BREAKER_OPEN,
            &[("upstream", upstream)],
            f64::from(u8::from(breaker_open)),
        );
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}
