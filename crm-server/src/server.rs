//! Serving: the accept loop over a listener the caller bound, path normalisation in
//! front of the routes, and graceful shutdown that drains connections then flushes.

use std::future::Future;
use std::time::Duration;

use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tower_service::Service;

use crate::config::Config;
use crate::connections::{Activity, TimedBody, Timeouts, Watched};
use crate::http::normalize_uri;
use crate::routes::routes;
use crate::state::AppState;
use crate::store::{Store, StoreError};

/// How long shutdown waits for requests in flight before closing.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the data directory {dir}: {source}")]
    Open { dir: String, source: StoreError },
    #[error("cannot open the database {url}: {source}")]
    OpenDatabase { url: String, source: StoreError },
    #[error("final flush failed: {0}")]
    Flush(StoreError),
}

/// Opens the store of `config` and serves on `listener` until `shutdown` resolves: the
/// PostgreSQL database of `config.database` (connected, its migrations applied), or
/// else the sled store of `config.data_dir` (guarded against a full disk; while it
/// opens, `listener` answers `503`, see [`crate::recovery`]).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    if let Some(database) = &config.database {
        let store = crate::store::postgres::PgStore::open(&database.url, database.pool)
            .await
            .map_err(|source| ServerError::OpenDatabase {
                url: crate::config::redacted(&database.url),
                source,
            })?;
        return serve(listener, store, config, shutdown).await;
    }
    let store = crate::recovery::open_answering(&listener, &config)
        .await
        .map_err(|source| ServerError::Open {
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
    let open_files = crate::connections::raise_open_file_limit();
    let max_connections = config
        .max_connections
        .unwrap_or_else(|| open_files.map_or(1024, crate::connections::max_connections_for));
    tracing::info!(
        ?open_files,
        max_connections,
        "open-file limit and most open connections"
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let timeouts = Timeouts {
        header: config.header_timeout,
        idle: config.idle_timeout,
    };
    let body_timeout = config.body_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    // hyper's clock runs from when it waits for a request, idle time included: the
    // watchdog of `connections` keeps the precise header and idle timeouts, this one
    // is the backstop.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header + timeouts.idle);
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
        // Past the maximum a connection is refused at once, not queued unanswered.
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "too many open connections: refused");
            tokio::spawn(crate::connections::refuse(stream));
            continue;
        };
        let service = service.clone();
        let activity = Activity::default();
        let requests = activity.clone();
        let normalizing = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            if let Some(uri) = normalize_uri(request.uri()) {
                *request.uri_mut() = uri;
            }
            request.extensions_mut().insert(crate::access::PeerAddr(peer));
            let handling = requests.request();
            let request = request.map(|body| TimedBody::new(body, body_timeout));
            let answer = service.clone().call(request);
            async move {
                let answer = answer.await;
                drop(handling);
                answer
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(Watched::new(stream, activity.clone())), normalizing)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                reason = activity.expired(timeouts) => tracing::debug!(%peer, reason, "connection closed"),
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
