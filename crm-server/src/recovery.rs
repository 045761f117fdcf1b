//! Start-up: the store opens, and rolls forward an import a stopped process left half
//! written (see [`crate::store::sled::import`]), on a blocking thread while the listener
//! already answers. Until the store is open, every request is answered `503` with
//! `Retry-After`, and `GET /healthz` `503` `{"status": "recovering", "progress": ...}`,
//! so that an operator sees the process alive and how far it is.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crm_model::import::{ImportPhase, ImportProgress};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tower_service::Service;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::config::Config;
use crate::error::ApiError;
use crate::store::{GuardedStore, StoreError};

/// How far the opening store is, shared with the answering side.
#[derive(Default)]
struct Recovering {
    /// The last report of the roll-forward, if an import is being finished.
    progress: Mutex<Option<ImportProgress>>,
}

/// Opens the store of `config` on a blocking thread, answering every connection on
/// `listener` meanwhile (see the module). Answers once the store is open, or why it
/// cannot be; connections accepted before are closed after their answer.
pub async fn open_answering(listener: &TcpListener, config: &Config) -> Result<GuardedStore, StoreError> {
    let recovering = Arc::new(Recovering::default());
    let reporter = recovering.clone();
    let opening_config = config.clone();
    let mut opening = tokio::task::spawn_blocking(move || {
        GuardedStore::open_reporting(&opening_config, &|progress| {
            *reporter.progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(progress);
        })
    });
    let started = Instant::now();
    let service = warp::service(answers(recovering.clone(), started));
    loop {
        let stream = tokio::select! {
            opened = &mut opening => {
                let outcome = opened.unwrap_or_else(|e| Err(StoreError::Storage(format!("opening the store stopped: {e}"))));
                if outcome.is_ok() && started.elapsed() > Duration::from_secs(1) {
                    tracing::info!(seconds = started.elapsed().as_secs_f64(), "store open");
                }
                return outcome;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let service = service.clone();
        let answering = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            service.clone().call(request)
        });
        tokio::spawn(async move {
            // One answer per connection: the next request goes to the open store.
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().keep_alive(false);
            let _ = builder
                .http1_only()
                .serve_connection(TokioIo::new(stream), answering)
                .await;
        });
    }
}

/// What is answered while the store opens.
fn answers(
    recovering: Arc<Recovering>,
    started: Instant,
) -> impl Filter<Extract = (Response,), Error = std::convert::Infallible> + Clone {
    let health = warp::path!("healthz").map(move || {
        let progress = *recovering.progress.lock().unwrap_or_else(|p| p.into_inner());
        let body = json!({
            "status": "recovering",
            "seconds": started.elapsed().as_secs(),
            "progress": progress.map(|p| json!({
                "phase": phase_name(p.phase),
                "done": p.done,
                "total": p.total,
            })),
        });
        with_retry_after(
            warp::reply::with_status(warp::reply::json(&body), StatusCode::SERVICE_UNAVAILABLE).into_response(),
        )
    });
    let other = warp::any().map(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "recovering",
            "the server is opening its store (finishing an interrupted import); retry shortly",
        )
        .into_response()
    });
    health.or(other).unify()
}

fn with_retry_after(mut response: Response) -> Response {
    response.headers_mut().insert(
        warp::http::header::RETRY_AFTER,
        warp::http::HeaderValue::from_static("1"),
    );
    response
}

fn phase_name(phase: ImportPhase) -> &'static str {
    match phase {
        ImportPhase::Reading => "reading",
        ImportPhase::Checking => "checking",
        ImportPhase::Writing => "writing",
        ImportPhase::Erasing => "erasing",
    }
}
