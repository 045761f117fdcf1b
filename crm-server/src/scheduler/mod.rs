//! What the older deployments' scheduler asks of the CRM every (simulated) day, and
//! the CRM's own schedule for deployments without it.
//!
//! The scheduler POSTs `{}` (or GETs) three routes: `/api/credit` pulls the shops'
//! tickets, `/api/credit_ecommerce` the web shop's, `/api/paiement` sends the due
//! deferred payments. The other services are reached through the gateway
//! ([`gateway`]); each answer is a JSON summary for people (the scheduler ignores it),
//! always `200`: a source's fault is reported, never a `500`.

pub mod gateway;
pub mod payment_run;
pub mod pulls;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use self::gateway::Gateway;
use self::payment_run::PaymentRunSummary;
use self::pulls::{PullSummary, Source, SHOPS, WEB_SHOP};
use crate::config::Config;
use crate::http::json;
use crate::state::AppState;
use crate::store::Store;
use crm_model::audit::WriteOrigin;
use warp::Reply;

/// The other services as the server reaches them.
pub struct Upstream {
    /// `None` without `--gateway`.
    pub gateway: Option<Gateway>,
    /// Largest answer of a ticket source.
    pub pull_limit: u64,
    /// Held by the payment run under way.
    pub payment_run: tokio::sync::Mutex<()>,
    /// Definite answers of the payment service that the store could not record yet.
    held_answers: Mutex<Vec<(u64, bool)>>,
    /// Set at shutdown: runs stop between payments, the schedule between rounds.
    pub stopping: AtomicBool,
    stop: Notify,
}

impl Upstream {
    pub fn new(config: &Config) -> Upstream {
        Upstream {
            gateway: config
                .gateway
                .clone()
                .map(|base| Gateway::new(base, config.upstream_timeout)),
            pull_limit: config.stream_limit,
            payment_run: tokio::sync::Mutex::new(()),
            held_answers: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
        }
    }

    pub(crate) fn held_answers(&self) -> std::sync::MutexGuard<'_, Vec<(u64, bool)>> {
        self.held_answers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks runs and the schedule to stop at their next step.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop.notify_waiters();
    }
}

/// The scheduler's routes but `POST /api/credit`, which shares its path with the
/// document's credit batches (see [`crate::loyalty`]).
pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let with_state = crate::access::acting_state(state);
    let post_or_get = || warp::post().or(warp::get()).unify();

    let shops = warp::path!("api" / "credit")
        .and(warp::get())
        .and(with_state.clone())
        .then(|state: AppState<S>| async move { pull_answer(&state, &SHOPS).await });
    let web_shop = warp::path!("api" / "credit_ecommerce")
        .and(post_or_get())
        .and(with_state.clone())
        .then(pull_web_shop);
    let payments = warp::path!("api" / "paiement")
        .and(post_or_get())
        .and(with_state)
        .then(send_payments);

    shops.or(web_shop).unify().or(payments).unify().boxed()
}

/// Pulls `source` and answers its summary. The pull runs in a task of its own, so that
/// a caller who hangs up does not cut it between its writes.
pub async fn pull_answer<S: Store>(state: &AppState<S>, source: &Source) -> Response {
    let state = state.clone();
    let source = *source;
    let pull = tokio::spawn(async move { pulls::pull(&state.store, &state.upstream, &source).await });
    match pull.await {
        Ok(summary) => json(&summary),
        Err(e) => crate::error::ApiError::internal(format!("the pull stopped: {e}")).into_response(),
    }
}

/// Pulls every ticket of the shops' service (`GET api/sales/` on `gestion-magasin`) and
/// credits their customers; the scheduler's `{}` on `POST /api/credit` does the same.
#[utoipa::path(get, path = "/api/credit", tag = "scheduler",
    responses((status = 200, description = "What the pull did; a source's fault is reported here", body = PullSummary)))]
#[allow(dead_code)]
fn pull_shops_doc() {}

/// Pulls every ticket of the web shop (`GET ecommerce/getTickets` on `e-commerce`) and
/// credits their customers. Any body is ignored.
#[utoipa::path(method(get, post), path = "/api/credit_ecommerce", tag = "scheduler",
    responses((status = 200, description = "What the pull did; a source's fault is reported here", body = PullSummary)))]
async fn pull_web_shop<S: Store>(state: AppState<S>) -> Response {
    pull_answer(&state, &WEB_SHOP).await
}

/// Sends every pending deferred payment due by today (the system's date, or the
/// scheduler's with `--clock scheduler`) to the payment service, once. Any body is
/// ignored.
#[utoipa::path(method(get, post), path = "/api/paiement", tag = "scheduler",
    responses((status = 200, description = "What the payment run did", body = PaymentRunSummary)))]
async fn send_payments<S: Store>(state: AppState<S>) -> Response {
    // In a task of its own: a caller who hangs up must not cut a payment between its
    // call and the recording of its answer.
    match tokio::spawn(async move { payment_run::run(&state).await }).await {
        Ok(summary) => json(&summary),
        Err(e) => crate::error::ApiError::internal(format!("the payment run stopped: {e}")).into_response(),
    }
}

/// With `--pull-every`: the scheduler's three calls on the server's own schedule, the
/// first at start. The task ends at its next step once [`Upstream::stop`] is called.
pub fn spawn_schedule<S: Store>(state: AppState<S>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let upstream = state.upstream.clone();
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                () = upstream.stop.notified() => return,
            }
            for source in [&SHOPS, &WEB_SHOP] {
                if upstream.stopping.load(Ordering::Acquire) {
                    return;
                }
                let origin = WriteOrigin::scheduler(format!("scheduler pull {}", source.service));
                pulls::pull(&state.store.acting_for(origin), &upstream, source).await;
            }
            payment_run::run(&state.acting_for(WriteOrigin::scheduler("scheduler payment run"))).await;
            if upstream.stopping.load(Ordering::Acquire) {
                return;
            }
        }
    })
}
