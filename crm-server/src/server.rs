//! Serving: the accept loop over a listener the caller bound, path normalisation in
//! front of the routes, and graceful shutdown that drains connections then flushes.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower_service::Service;

use crate::config::Config;
use crate::http::normalize_uri;
use crate::routes::{routes, AppState};
use crate::store::{SledStore, Store, StoreError};

/// How long shutdown waits for requests in flight before closing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the data directory {dir}: {source}")]
    Open { dir: String, source: StoreError },
    #[error("final flush failed: {0}")]
    Flush(StoreError),
}

/// Opens the sled store of `config` and serves on `listener` until `shutdown` resolves.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let store = SledStore::open(&config.data_dir, config.cache_bytes).map_err(|source| ServerError::Open {
        dir: config.data_dir.display().to_string(),
        source,
    })?;
    serve(listener, store, config, shutdown).await
}

/// Serves any [`Store`] on `listener` until `shutdown` resolves: stops accepting, lets
/// requests in flight finish, flushes the store.
pub async fn serve<S: Store>(
    listener: TcpListener,
    store: S,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let pull_every = config.pull_every;
    let mut config = config;
    config.listen_addr = listener.local_addr().ok();
    let state = AppState::new(store.clone(), config);
    if let Some(warning) = state.access.exposure_warning() {
        tracing::warn!("{warning}");
    }
    let schedule = pull_every.map(|every| crate::scheduler::spawn_schedule(state.clone(), every));
    let upstream = state.upstream.clone();
    let service = warp::service(routes(state));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = service.clone();
        let normalizing = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            if let Some(uri) = normalize_uri(request.uri()) {
                *request.uri_mut() = uri;
            }
            request.extensions_mut().insert(crate::access::PeerAddr(peer));
            service.clone().call(request)
        });
        let connection = auto::Builder::new(TokioExecutor::new())
            .http1_only()
            .serve_connection_with_upgrades(TokioIo::new(stream), normalizing)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    // Payment runs stop between two payments, the schedule between two rounds: a
    // payment is never cut between its call and the recording of its answer.
    upstream.stop();
    tracing::info!("shutting down: finishing requests in flight");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; closing anyway");
    }
    if let Some(schedule) = schedule {
        if tokio::time::timeout(DRAIN_TIMEOUT, schedule).await.is_err() {
            tracing::warn!("the schedule's round still runs after {DRAIN_TIMEOUT:?}; closing anyway");
        }
    }
    store.flush().await.map_err(ServerError::Flush)?;
    tracing::info!("stopped");
    Ok(())
}
