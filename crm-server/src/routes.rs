//! The whole route table and what every handler shares.

use std::sync::Arc;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::access::{self, Access};
use crate::config::Config;
use crate::error::{allow_on_405, recover};
use crate::http::json;
use crate::imports::ImportTracker;
use crate::scheduler::Upstream;
use crate::store::Store;
use crate::{audit, backup, customers, import, imports, loyalty, openapi, pages, payments, scheduler, tickets};

/// What every handler is given: the store, the settings, the other services and the
/// imports under way.
pub struct AppState<S> {
    pub store: S,
    pub config: Arc<Config>,
    pub upstream: Arc<Upstream>,
    pub imports: Arc<ImportTracker>,
    pub access: Arc<Access>,
}

impl<S> AppState<S> {
    pub fn new(store: S, config: Config) -> AppState<S> {
        AppState {
            upstream: Arc::new(Upstream::new(&config)),
            imports: Arc::default(),
            access: Arc::new(Access::new(&config)),
            store,
            config: Arc::new(config),
        }
    }
}

impl<S: crate::store::AuditStore + Clone> AppState<S> {
    /// This state with its store acting for `origin`: the writes its handlers make are
    /// recorded in the audit trail under that actor and route.
    pub fn acting_for(&self, origin: crm_model::audit::WriteOrigin) -> AppState<S> {
        AppState {
            store: self.store.acting_for(origin),
            ..self.clone()
        }
    }
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        AppState {
            store: self.store.clone(),
            config: self.config.clone(),
            upstream: self.upstream.clone(),
            imports: self.imports.clone(),
            access: self.access.clone(),
        }
    }
}

/// Every route of the service; whatever matches none is a JSON error.
pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let all = health(state.clone())
        .or(customers::routes(state.clone()))
        .unify()
        .or(import::routes(state.clone()))
        .unify()
        .or(imports::routes(state.clone()))
        .unify()
        .or(loyalty::routes(state.clone()))
        .unify()
        .or(tickets::routes(state.clone()))
        .unify()
        .or(payments::routes(state.clone()))
        .unify()
        .or(scheduler::routes(state.clone()))
        .unify()
        .or(openapi::routes())
        .unify()
        .or(backup::routes(state.clone()))
        .unify()
        .or(audit::routes(state.clone()))
        .unify()
        .or(crate::metrics::routes(
            state.store.clone(),
            state.imports.clone(),
            metrics.clone(),
            state.access.clone(),
        ))
        .unify()
        .or(pages::routes(state.clone()))
        .unify()
        .boxed();
    let served = access::protect(&state, all).recover(recover).unify();
    // The path is read beside the routes (not consumed) so that a `405` can name the
    // methods its path takes.
    let served = warp::path::full().and(served).map(allow_on_405).boxed();
    crate::metrics::instrument(served, metrics)
}

/// `GET /healthz`: `200` once the store is open, `"status": "ok"`; `"degraded"` with a
/// `reason` while the store takes no writes (a full disk) but still serves reads, which
/// is why it stays a `200`: a balancer should keep sending reads.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The store is open (status ok, or degraded with a reason); counts for operators", body = crate::openapi::HealthAnswer),
        (status = 503, description = "The store is still opening (`recovering`, with the roll-forward's progress); `Retry-After`")))]
fn health<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    warp::path!("healthz")
        .and(warp::get())
        .map(move || {
            let degraded = state.store.degraded();
            match state.store.customer_count() {
                Ok(customers) => {
                    let mut body = json!({
                        "status": "ok",
                        "customers": customers,
                        "flushes": state.store.flush_count(),
                    });
                    if let Some(reason) = degraded {
                        body["status"] = json!("degraded");
                        body["reason"] = json!(reason);
                    }
                    json(&body)
                }
                Err(e) => warp::Reply::into_response(crate::error::ApiError::from(e)),
            }
        })
        .boxed()
}
