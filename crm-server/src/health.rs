//! `GET /healthz`: whether the store is open, and its counters for operators.

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::http::json;
use crate::state::AppState;
use crate::store::Store;

/// The route of `GET /healthz`.
pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    warp::path!("healthz")
        .and(warp::get())
        .then(move || {
            let store = state.store.clone();
            async move { health(&store).await }
        })
        .boxed()
}

/// `GET /healthz`: `200` once the store is open, `"status": "ok"`; `"degraded"` with a
/// `reason` while the store takes no writes (a full disk) but still serves reads, which
/// is why it stays a `200`: a balancer should keep sending reads.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The store is open (status ok, or degraded with a reason); counts for operators", body = crate::openapi::HealthAnswer),
        (status = 503, description = "The store is still opening (`recovering`, with the roll-forward's progress); `Retry-After`")))]
pub(crate) async fn health<S: Store>(store: &S) -> Response {
    let degraded = store.degraded().await;
    match store.stats().await {
        Ok(stats) => {
            let mut body = json!({
                "status": "ok",
                "customers": stats.customers,
                "flushes": stats.flushes,
            });
            if let Some(reason) = degraded {
                body["status"] = json!("degraded");
                body["reason"] = json!(reason);
            }
            json(&body)
        }
        Err(e) => warp::Reply::into_response(crate::error::ApiError::from(e)),
    }
}
