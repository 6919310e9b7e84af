//! Prometheus metrics, exposed at `/metrics` in the text format. A small fixed set, kept in
//! atomics: request counts by route and status class, and a latency histogram per route.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const BUCKETS_MS: [f64; 12] = [
    1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0,
];

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; 12],
    count: u64,
    sum_ms: f64,
}

#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
    pub webhooks_applied: AtomicU64,
    pub webhooks_duplicate: AtomicU64,
    pub webhooks_rejected: AtomicU64,
}

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, ms: f64) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        let s = routes
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        *s.by_status.entry(status).or_default() += 1;
        s.count += 1;
        s.sum_ms += ms;
        for (i, b) in BUCKETS_MS.iter().enumerate() {
            if ms <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP passbind_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE passbind_http_requests_total counter");
        let routes = match self.routes.lock() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        };
        for ((m, r), s) in routes.iter() {
            for (status, n) in &s.by_status {
                let _ = writeln!(
                    out,
                    "passbind_http_requests_total{{method=\"{m}\",route=\"{r}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP passbind_http_request_duration_seconds Request latency."
        );
        let _ = writeln!(
            out,
            "# TYPE passbind_http_request_duration_seconds histogram"
        );
        for ((m, r), s) in routes.iter() {
            for (i, b) in BUCKETS_MS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "passbind_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"{}\"}} {}",
                    b / 1000.0,
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "passbind_http_request_duration_seconds_bucket{{method=\"{m}\",route=\"{r}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "passbind_http_request_duration_seconds_sum{{method=\"{m}\",route=\"{r}\"}} {}",
                s.sum_ms / 1000.0
            );
            let _ = writeln!(
                out,
                "passbind_http_request_duration_seconds_count{{method=\"{m}\",route=\"{r}\"}} {}",
                s.count
            );
        }
        drop(routes);
        for (name, help, v) in [
            (
                "passbind_idv_webhooks_applied_total",
                "IDV webhooks whose verdict was applied.",
                &self.webhooks_applied,
            ),
            (
                "passbind_idv_webhooks_duplicate_total",
                "IDV webhooks recognised as replays.",
                &self.webhooks_duplicate,
            ),
            (
                "passbind_idv_webhooks_rejected_total",
                "IDV webhooks refused (signature, unknown run, state).",
                &self.webhooks_rejected,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

/// Middleware: records every request and logs it without its body, query or path values
/// (the route template is logged, not the concrete path).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    let status = resp.status().as_u16();
    metrics.observe(&method, &route, status, ms);
    tracing::info!(target: "passbind::http", method, route, status, ms = format!("{ms:.2}"), "request");
    resp
}
