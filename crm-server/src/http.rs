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
        let mut chunk = chunk.map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
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

/// The raw query string, empty when there is none.
pub fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Reads a query string into `T`; an unreadable one is a `400`.
pub fn parse_query<T: DeserializeOwned>(raw: &str) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw).map_err(|e| ApiError::bad_request(format!("the query string cannot be read: {e}")))
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
/// whose items come in batches from `next_batch`, called on a blocking thread until it
/// answers an empty batch. At most a few batches are in memory whatever the total, and
/// production stops when the client goes away.
pub fn stream_json_array<T, F>(prefix: &'static str, suffix: &'static str, mut next_batch: F) -> Response
where
    T: Serialize,
    F: FnMut() -> Result<Vec<T>, crate::store::StoreError> + Send + 'static,
{
    let (chunks, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        let mut first = true;
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(prefix.as_bytes());
        loop {
            let batch = match next_batch() {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(error = %e, "listing failed mid-stream");
                    let _ = chunks.blocking_send(Err(std::io::Error::other(e.to_string())));
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
            if chunks.blocking_send(Ok(Bytes::from(std::mem::take(&mut buf)))).is_err() {
                return; // the client went away
            }
        }
        buf.extend_from_slice(suffix.as_bytes());
        let _ = chunks.blocking_send(Ok(Bytes::from(buf)));
    });
    let body = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
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
