//! The gateway of older deployments: every other service is reached at
//! `<gateway>/<path>` with the header `Host: <service>`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderValue, HOST, LOCATION};
use reqwest::{Method, Url};

/// Redirects followed for one call (the shops' service answers `301` to the same path
/// with a slash).
const MAX_REDIRECTS: usize = 5;

/// Why a call to another service gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// No connection could be made: the request was not sent.
    #[error("{service} cannot be reached: {reason}")]
    Unreachable { service: String, reason: String },
    /// The request was sent but no whole answer came in time.
    #[error("{service} did not answer within {after:?}")]
    Timeout { service: String, after: Duration },
    /// The connection broke after the request was sent.
    #[error("{service}: the call broke off: {reason}")]
    Broken { service: String, reason: String },
    /// An answer other than `2xx` (redirects already followed).
    #[error("{service} answered HTTP {status}")]
    Status { service: String, status: u16 },
    #[error("{service} redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects { service: String },
    #[error("{service} answered more than {limit} bytes")]
    TooLarge { service: String, limit: u64 },
}

impl UpstreamError {
    /// Whether the service may have acted on the request (it may have charged a
    /// payment): everything but a connection that was never made.
    pub fn may_have_reached(&self) -> bool {
        !matches!(self, UpstreamError::Unreachable { .. })
    }
}

/// A client of the gateway.
#[derive(Debug, Clone)]
pub struct Gateway {
    base: Url,
    client: reqwest::Client,
    timeout: Duration,
}

impl Gateway {
    /// A client of the gateway at `base` (ending with `/`), each call bounded by
    /// `timeout`.
    pub fn new(base: Url, timeout: Duration) -> Gateway {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // Redirects are followed by hand, keeping the service's Host header.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client without TLS builds");
        Gateway { base, client, timeout }
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// `GET <gateway>/<path>` on `service`, following redirects within the service;
    /// an answer over `limit` bytes is refused.
    pub async fn get(&self, service: &str, path: &str, limit: u64) -> Result<Bytes, UpstreamError> {
        let mut url = self.url(service, path)?;
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send(service, Method::GET, url.clone(), None).await?;
            if response.status().is_redirection() {
                url = self.redirect_target(service, &url, &response)?;
                continue;
            }
            return self.answer(service, response, limit).await;
        }
        Err(UpstreamError::TooManyRedirects {
            service: service.into(),
        })
    }

    /// `POST <gateway>/<path>` on `service` with a form-encoded body; no redirect is
    /// followed (a redirected POST was not acted on).
    pub async fn post_form(
        &self,
        service: &str,
        path: &str,
        form: &[(&str, String)],
        limit: u64,
    ) -> Result<Bytes, UpstreamError> {
        let url = self.url(service, path)?;
        let body = serde_urlencoded::to_string(form).expect("a form of strings encodes");
        let response = self.send(service, Method::POST, url, Some(body)).await?;
        self.answer(service, response, limit).await
    }

    fn url(&self, service: &str, path: &str) -> Result<Url, UpstreamError> {
        self.base
            .join(path.trim_start_matches('/'))
            .map_err(|e| UpstreamError::Unreachable {
                service: service.into(),
                reason: format!("bad path {path:?}: {e}"),
            })
    }

    async fn send(
        &self,
        service: &str,
        method: Method,
        url: Url,
        form: Option<String>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let host = HeaderValue::from_str(service).map_err(|_| UpstreamError::Unreachable {
            service: service.into(),
            reason: "the service name is not a valid Host".into(),
        })?;
        let mut request = self.client.request(method, url).header(HOST, host);
        if let Some(form) = form {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form);
        }
        request.send().await.map_err(|e| self.error(service, e))
    }

    /// Where a redirect points, kept on the gateway and the same service: only its
    /// path and query are taken, whatever host the service wrote in it, and a path
    /// from the service's root is put under the gateway's own path.
    fn redirect_target(&self, service: &str, from: &Url, response: &reqwest::Response) -> Result<Url, UpstreamError> {
        let unusable = || UpstreamError::Status {
            service: service.into(),
            status: response.status().as_u16(),
        };
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(unusable)?;
        let location = match Url::parse(location) {
            Ok(absolute) => match absolute.query() {
                Some(query) => format!("{}?{query}", absolute.path()),
                None => absolute.path().to_string(),
            },
            Err(_) => location.to_string(),
        };
        match location.strip_prefix('/') {
            Some(from_root) => self.base.join(from_root),
            None => from.join(&location),
        }
        .map_err(|_| unusable())
    }

    /// The body of a `2xx` answer, read whole within the bound.
    async fn answer(&self, service: &str, mut response: reqwest::Response, limit: u64) -> Result<Bytes, UpstreamError> {
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::Status {
                service: service.into(),
                status: status.as_u16(),
            });
        }
        let too_large = || UpstreamError::TooLarge {
            service: service.into(),
            limit,
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.error(service, e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    fn error(&self, service: &str, error: reqwest::Error) -> UpstreamError {
        let service = service.to_string();
        if error.is_connect() {
            UpstreamError::Unreachable {
                service,
                reason: source_chain(&error),
            }
        } else if error.is_timeout() {
            UpstreamError::Timeout {
                service,
                after: self.timeout,
            }
        } else {
            UpstreamError::Broken {
                service,
                reason: source_chain(&error),
            }
        }
    }
}

/// An error with its causes, which reqwest keeps apart (`connection refused` is one).
fn source_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
