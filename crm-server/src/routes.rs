//! The whole route table: every route module's routes, one after the other. Route
//! modules depend on [`crate::state`], never on this module.

use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::Filter;

use crate::access;
use crate::error::{allow_on_405, recover};
use crate::state::AppState;
use crate::store::Store;
use crate::{audit, backup, customers, health, import, imports, loyalty, openapi, pages, payments, scheduler, tickets};

/// Every route of the service; whatever matches none is a JSON error.
pub fn routes<S: Store>(state: AppState<S>) -> BoxedFilter<(Response,)> {
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let all = health::routes(state.clone())
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
