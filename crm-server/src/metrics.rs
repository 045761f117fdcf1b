//! Operations: `GET /metrics` in the Prometheus text format, and the layer that every
//! request goes through: it takes or gives the request an id (answered in
//! `X-Request-Id`), logs the request through `tracing` with it, and counts and times
//! it by route pattern and status.

use std::sync::Arc;
use std::time::Instant;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode};
use warp::path::FullPath;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::access::{Access, Role};
use crate::error::ApiError;
use crate::imports::ImportTracker;
use crate::store::{Store, StoreStats};

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// The connection's peer, as the accept loop records it for the access checks.
pub use crate::access::PeerAddr as Peer;

/// Every route of the service as a pattern (`{}` is one path segment of any value), so
/// that metrics count routes, not paths: an id in a path would make a series per
/// customer. Literal routes come before the patterns they would also match.
const ROUTES: &[&str] = &[
    "/healthz",
    "/metrics",
    "/api",
    "/api/allow_credit",
    "/api/assets/crm.css",
    "/api/create_customer",
    "/api/credit",
    "/api/credit/{}",
    "/api/credit_ecommerce",
    "/api/customer/email",
    "/api/customers",
    "/api/customers/new",
    "/api/customers/{}",
    "/api/customers/{}/card",
    "/api/customers/{}/credit",
    "/api/customers/{}/edit",
    "/api/customers/{}/refusals/reset",
    "/api/data",
    "/api/data/{}",
    "/api/get_tickets",
    "/api/get_tickets/{}",
    "/api/paiement",
    "/api/update_db",
    "/api/v1/audit",
    "/api/v1/customers",
    "/api/v1/customers/{}",
    "/api/v1/customers/{}/card",
    "/api/v1/customers/{}/ledger",
    "/api/v1/customers/{}/payments",
    "/api/v1/customers/{}/refusals/reset",
    "/api/v1/customers/{}/tickets",
    "/api/v1/export",
    "/api/v1/imports/current",
    "/api/v1/imports/{}",
    "/api/v1/openapi.json",
    "/api/v1/payments",
    "/api/v1/payments/{}/result",
    "/api/v1/tickets",
];

/// The route pattern of a path, or `other` for a path no route serves.
pub fn route_of(path: &str) -> &'static str {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let matches = |route: &str| {
        let parts: Vec<&str> = route.split('/').filter(|s| !s.is_empty()).collect();
        parts.len() == segments.len() && parts.iter().zip(&segments).all(|(p, s)| *p == "{}" || p == s)
    };
    // A literal match first: `/api/customers/new` is not the customer `new`.
    ROUTES
        .iter()
        .find(|route| !route.contains("{}") && matches(route))
        .or_else(|| ROUTES.iter().find(|route| matches(route)))
        .copied()
        .unwrap_or("other")
}

/// An incoming request id worth keeping: short, printable, no spaces (it goes into
/// logs and back into a header). Anything else is replaced by a fresh UUID.
fn sane_request_id(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let sane = !text.is_empty()
        && text.len() <= 128
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='));
    sane.then(|| text.to_string())
}

/// The service's metrics, in one registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    customers: IntGauge,
    tickets: IntGauge,
    flushes: IntGauge,
    store_bytes: IntGauge,
    import_running: IntGauge,
    import_done: IntGauge,
    import_total: IntGauge,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "crm_http_requests_total",
                "HTTP requests answered, by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("a valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "crm_http_request_duration_seconds",
                "Time to answer a request (until its answer starts), by route pattern and method",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )
        .expect("a valid metric");
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("a valid metric");
        let metrics = Metrics {
            customers: gauge("crm_customers", "Live (not erased) customers"),
            tickets: gauge("crm_tickets", "Tickets stored"),
            flushes: gauge("crm_store_flushes_total", "Disk flushes of the store since it opened"),
            store_bytes: gauge("crm_store_size_bytes", "Bytes the store takes on disk"),
            import_running: gauge("crm_import_running", "Customer imports running"),
            import_done: gauge(
                "crm_import_rows_done",
                "Rows done in the current stage of the running import",
            ),
            import_total: gauge(
                "crm_import_rows_total",
                "Rows of the current stage of the running import (0 while unknown)",
            ),
            registry,
            requests,
            latency,
        };
        let collectors: [Box<dyn prometheus::core::Collector>; 9] = [
            Box::new(metrics.requests.clone()),
            Box::new(metrics.latency.clone()),
            Box::new(metrics.customers.clone()),
            Box::new(metrics.tickets.clone()),
            Box::new(metrics.flushes.clone()),
            Box::new(metrics.store_bytes.clone()),
            Box::new(metrics.import_running.clone()),
            Box::new(metrics.import_done.clone()),
            Box::new(metrics.import_total.clone()),
        ];
        for collector in collectors {
            metrics.registry.register(collector).expect("metric names are unique");
        }
        metrics
    }

    fn observe(&self, route: &str, method: &Method, status: StatusCode, seconds: f64) {
        self.requests
            .with_label_values(&[route, method.as_str(), status.as_str()])
            .inc();
        self.latency
            .with_label_values(&[route, method.as_str()])
            .observe(seconds);
    }

    /// The exposition: the store's gauges read now, then every metric.
    fn render(&self, stats: StoreStats, imports: &ImportTracker) -> Result<String, ApiError> {
        let as_gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.customers.set(as_gauge(stats.customers));
        self.tickets.set(as_gauge(stats.tickets));
        self.flushes.set(as_gauge(stats.flushes));
        self.store_bytes.set(stats.size_on_disk.map_or(0, as_gauge));
        let current = imports.current();
        self.import_running.set(i64::from(current.is_some()));
        self.import_done.set(current.as_ref().map_or(0, |i| as_gauge(i.done)));
        self.import_total
            .set(current.as_ref().and_then(|i| i.total).map_or(0, as_gauge));
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut text)
            .map_err(|e| ApiError::internal(format!("cannot write the metrics: {e}")))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Whether `/metrics` answers: a loopback peer (not a request whose peer is unknown),
/// or, with tokens configured, a request carrying an `admin` token from anywhere.
fn served_to(peer: Option<Peer>, admin: bool) -> bool {
    admin || peer.is_some_and(|p| p.0.ip().is_loopback())
}

/// `GET /metrics`, to loopback peers and `admin` tokens (Prometheus scrapes from the
/// same host, or with a token; the register's size and rates are not for the network).
pub fn routes<S: Store>(
    store: S,
    imports: Arc<ImportTracker>,
    metrics: Arc<Metrics>,
    access: Arc<Access>,
) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(warp::ext::optional::<Peer>())
        .and(warp::header::headers_cloned())
        .then(move |peer: Option<Peer>, headers: warp::http::HeaderMap| {
            let (store, imports, metrics, access) = (store.clone(), imports.clone(), metrics.clone(), access.clone());
            async move { answer(&store, &imports, &metrics, &access, peer, &headers).await }
        })
        .boxed()
}

/// The answer of `GET /metrics`.
async fn answer<S: Store>(
    store: &S,
    imports: &ImportTracker,
    metrics: &Metrics,
    access: &Access,
    peer: Option<Peer>,
    headers: &warp::http::HeaderMap,
) -> Response {
    let admin = access.tokens_configured()
        && access
            .principal(headers)
            .is_some_and(|principal| principal.role == Role::Admin);
    if !served_to(peer, admin) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "metrics_loopback_only",
            "/metrics is served to loopback peers and admin tokens only",
        )
        .into_response();
    }
    let stats = match store.stats().await {
        Ok(stats) => stats,
        Err(e) => return ApiError::from(e).into_response(),
    };
    match metrics.render(stats, imports) {
        Ok(text) => warp::reply::with_header(text, "content-type", prometheus::TEXT_FORMAT).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Wraps every route: the request id (incoming if sane, else a new UUID) in the
/// answer's `X-Request-Id`, one `tracing` line per request, and the request counted
/// and timed under its route pattern.
pub fn instrument(routes: BoxedFilter<(Response,)>, metrics: Arc<Metrics>) -> BoxedFilter<(Response,)> {
    warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(
            warp::header::value(REQUEST_ID)
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(routes)
        .map(
            move |start: Instant,
                  method: Method,
                  path: FullPath,
                  incoming: Option<HeaderValue>,
                  mut response: Response| {
                let request_id = incoming
                    .as_ref()
                    .and_then(sane_request_id)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                let elapsed = start.elapsed();
                let route = route_of(path.as_str());
                let status = response.status();
                metrics.observe(route, &method, status, elapsed.as_secs_f64());
                tracing::info!(
                    request_id = %request_id,
                    method = %method,
                    route,
                    path = path.as_str(),
                    status = status.as_u16(),
                    elapsed_ms = elapsed.as_secs_f64() * 1000.0,
                    "request"
                );
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert(REQUEST_ID, value);
                }
                response
            },
        )
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_counted_under_their_route_pattern() {
        assert_eq!(
            route_of("/api/v1/customers/8f0c6a1e-0000-4000-8000-000000000001/ledger"),
            "/api/v1/customers/{}/ledger"
        );
        assert_eq!(route_of("/api/customers/new"), "/api/customers/new");
        assert_eq!(route_of("/api/customers/abc"), "/api/customers/{}");
        assert_eq!(route_of("/api/get_tickets/bi"), "/api/get_tickets/{}");
        assert_eq!(route_of("/api/v1/imports/current"), "/api/v1/imports/current");
        assert_eq!(route_of("/"), "other");
        assert_eq!(route_of("/wp-admin/login.php"), "other");
        assert_eq!(route_of("/api/v1/customers/x/y/z"), "other");
    }

    #[test]
    fn metrics_are_served_to_loopback_peers_and_admin_tokens_only() {
        let peer = |addr: &str| Some(Peer(addr.parse().unwrap()));
        assert!(served_to(peer("127.0.0.1:5000"), false));
        assert!(served_to(peer("127.8.0.3:5000"), false));
        assert!(served_to(peer("[::1]:5000"), false));
        assert!(!served_to(peer("192.168.1.20:5000"), false));
        assert!(!served_to(peer("10.0.0.1:80"), false));
        assert!(!served_to(peer("[2001:db8::1]:80"), false));
        assert!(!served_to(None, false));
        assert!(served_to(peer("192.168.1.20:5000"), true));
        assert!(served_to(peer("[2001:db8::1]:80"), true));
    }

    #[test]
    fn only_sane_incoming_request_ids_are_kept() {
        let id = |s: &str| sane_request_id(&HeaderValue::from_str(s).unwrap());
        assert_eq!(id("abc-123_x.y"), Some("abc-123_x.y".into()));
        assert_eq!(id(""), None);
        assert_eq!(id("with space"), None);
        assert_eq!(id(&"x".repeat(129)), None);
        assert_eq!(id("a\"b"), None);
    }
}
