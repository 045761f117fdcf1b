//! Transport rules shared by every route: bodies read with a size limit (JSON whatever
//! the `Content-Type`), query strings read without rejecting, JSON answers, and the
//! path normalisation older clients need.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use warp::http::{StatusCode, Uri};
use warp::reply::{Reply, Response};
use warp::{Buf, Filter, Rejection};

use crate::error::ApiError;

/// The whole body, refused with `413` past `limit` bytes. Never rejects: the handler
/// answers the error, so it cannot surface as another route's 404 or 405.
pub fn body_limited(limit: u64) -> impl Filter<Extract = (Result<Bytes, ApiError>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("content-length")
        .and(warp::body::stream())
        .then(move |declared: Option<String>, body| async move {
            if declared
                .and_then(|d| d.trim().parse::<u64>().ok())
                .is_some_and(|d| d > limit)
            {
                return Err(ApiError::payload_too_large(limit));
            }
            read_limited(body, limit).await
        })
}

async fn read_limited<S, B>(body: S, limit: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let mut chunk = chunk.map_err(|e| body_error(&e))?;
        if out.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::payload_too_large(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            out.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

/// The answer to a body that could not be read: `408` when it stalled past the body
/// timeout, `400` otherwise.
pub fn body_error(error: &warp::Error) -> ApiError {
    if crate::connections::is_body_stalled(error) {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the body could not be read: {error}"),
        )
    } else {
        ApiError::bad_request(format!("the body could not be read: {error}"))
    }
}

/// Turns a handler's outcome into the answer: the error's JSON on failure.
pub fn into_response(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

/// The `limit` and `cursor` of a list whose cursor is a sequence number (ledger,
/// tickets, payments of a customer); `400` when unreadable.
pub fn seq_page_query(raw: &str) -> Result<(usize, Option<u64>), ApiError> {
    let params: crm_model::ListParams = parse_query(raw)?;
    let query = crm_model::ListQuery::from_params(&params)?;
    let after = match query.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.parse::<u64>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_cursor",
                format!("cursor {cursor:?} is not a cursor of this list"),
            )
        })?),
    };
    Ok((query.limit, after))
}

/// The raw query string, empty when there is none.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Reads a query string into `T`; an unreadable one is a `400`.
pub fn parse_query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    if !query_is_utf8(raw) {
        return Err(ApiError::bad_request(
            "the query string cannot be read: a percent-encoded value is not UTF-8",
        ));
    }
    serde_urlencoded::from_str(raw).map_err(|e| ApiError::bad_request(format!("the query string cannot be read: {e}")))
}

/// Whether every name and value of a query string decodes to UTF-8. Query parsers
/// replace bad bytes silently, so `?q=%FF` would search for `\u{FFFD}` instead of
/// being refused.
pub fn query_is_utf8(raw: &str) -> bool {
    raw.split(['&', '='])
        .all(|part| percent_encoding::percent_decode_str(part).decode_utf8().is_ok())
}

pub fn json<T: Serialize>(value: &T) -> Response {
    warp::reply::json(value).into_response()
}

pub fn json_with_status<T: Serialize>(value: &T, status: StatusCode) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// The path older clients meant: `//api//data/` is `/api/data`. `None` when the path
/// is already normal.
pub fn normalize_uri(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let needs = path.contains("//") || (path.len() > 1 && path.ends_with('/'));
    if !needs {
        return None;
    }
    let mut normal = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        normal.push('/');
        normal.push_str(segment);
    }
    if normal.is_empty() {
        normal.push('/');
    }
    if let Some(query) = uri.query() {
        normal.push('?');
        normal.push_str(query);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(normal.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// Streams a JSON array (inside `prefix`/`suffix`, e.g. `[`/`]` or `{"tickets":[`/`]}`)
/// whose items come in `batches`, read by a task of its own until the stream ends or
/// yields an empty batch. At most a few batches are in memory whatever the total, and
/// production stops when the client goes away.
pub fn stream_json_array<T, B>(prefix: &'static str, suffix: &'static str, batches: B) -> Response
where
    T: Serialize + Send + 'static,
    B: Stream<Item = Result<Vec<T>, crate::store::StoreError>> + Send + 'static,
{
    stream_json_array_then(prefix, suffix, batches, || async {})
}

/// [`stream_json_array`], then `on_complete` once the whole body, suffix included, has
/// been taken by the connection (the body stream was polled to its end). It does not
/// run when the listing fails or the client goes away before the end.
pub fn stream_json_array_then<T, B, C, Fut>(
    prefix: &'static str,
    suffix: &'static str,
    batches: B,
    on_complete: C,
) -> Response
where
    T: Serialize + Send + 'static,
    B: Stream<Item = Result<Vec<T>, crate::store::StoreError>> + Send + 'static,
    C: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (chunks, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let produced_all = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer_done = produced_all.clone();
    tokio::spawn(async move {
        let mut batches = std::pin::pin!(batches);
        let mut first = true;
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(prefix.as_bytes());
        loop {
            let batch = match batches.next().await {
                Some(Ok(batch)) => batch,
                None => Vec::new(),
                Some(Err(e)) => {
                    tracing::error!(error = %e, "listing failed mid-stream");
                    let _ = chunks.send(Err(std::io::Error::other(e.to_string()))).await;
                    return;
                }
            };
            if batch.is_empty() {
                break;
            }
            for item in &batch {
                if !first {
                    buf.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut buf, item).expect("API objects serialise");
            }
            if chunks.send(Ok(Bytes::from(std::mem::take(&mut buf)))).await.is_err() {
                return; // the client went away
            }
            // Reads and serialising are synchronous: between batches, the other tasks of
            // this thread (and the I/O driver, which tells of a client gone) get a turn.
            tokio::task::yield_now().await;
        }
        buf.extend_from_slice(suffix.as_bytes());
        if chunks.send(Ok(Bytes::from(buf))).await.is_ok() {
            producer_done.store(true, std::sync::atomic::Ordering::Release);
        }
    });
    // The body must be `Sync`: the completion waits in a mutex and runs as its own task.
    let state = (receiver, std::sync::Mutex::new(Some(on_complete)));
    let body = futures::stream::unfold(state, move |(mut receiver, on_complete)| {
        let produced_all = produced_all.clone();
        async move {
            match receiver.recv().await {
                Some(chunk) => Some((chunk, (receiver, on_complete))),
                None => {
                    // Every chunk was taken; the producer's flag says none was missing.
                    let complete = produced_all.load(std::sync::atomic::Ordering::Acquire);
                    let task = on_complete
                        .lock()
                        .ok()
                        .and_then(|mut c| c.take())
                        .filter(|_| complete)
                        .map(|done| tokio::spawn(done()));
                    if let Some(task) = task {
                        let _ = task.await;
                    }
                    None
                }
            }
        }
    });
    warp::reply::with_header(warp::reply::stream(body), "content-type", "application/json").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        let uri: Uri = s.parse().unwrap();
        normalize_uri(&uri).map_or(s.to_string(), |u| u.to_string())
    }

    #[test]
    fn doubled_and_trailing_slashes_are_dropped() {
        assert_eq!(norm("//api/data"), "/api/data");
        assert_eq!(norm("/api/data/"), "/api/data");
        assert_eq!(norm("//api//v1/customers/?limit=2"), "/api/v1/customers?limit=2");
        assert_eq!(norm("/"), "/");
        assert_eq!(norm("//"), "/");
        assert_eq!(norm("/api/data"), "/api/data");
    }
}
