//! Limits of client connections: how long a connection may sit idle or take to send a
//! request head, how long a request body may stall, how many connections are open at
//! once, and the open-file limit they all draw on.
//!
//! hyper's own `header_read_timeout` starts as soon as it waits for a request, idle
//! keep-alive time included, so it cannot tell a slow head from an idle connection. A
//! small watchdog per connection does: the first byte after an idle spell starts the
//! head clock; an answered request starts the idle clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Descriptors kept for the store's files, the calls to other services and the
/// refusals of connections past the maximum.
const RESERVED_FILES: u64 = 128;

/// Raises the soft open-file limit to the hard one (each connection holds a
/// descriptor) and answers the limit now in force, `None` where it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(e) => {
            tracing::warn!(error = %e, "the open-file limit cannot be raised");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

/// The default maximum of open connections under an open-file limit: the limit less
/// the descriptors the rest of the server needs, at least half of it.
pub fn max_connections_for(open_file_limit: u64) -> usize {
    let max = open_file_limit
        .saturating_sub(RESERVED_FILES)
        .max(open_file_limit / 2)
        .max(1);
    usize::try_from(max).unwrap_or(usize::MAX)
}

/// What a connection is doing, as the watchdog sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request: waiting for the first byte of the next one.
    Idle,
    /// Bytes of a request head came, its handler has not been called yet.
    Head,
    /// Requests are being handled (their bodies have their own timeout).
    Busy(usize),
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// When the phase began.
    since: Instant,
    /// Last byte read or written.
    last_io: Instant,
}

/// The shared record of one connection's activity.
#[derive(Debug, Clone)]
pub struct Activity(Arc<Mutex<State>>);

impl Default for Activity {
    fn default() -> Self {
        let now = Instant::now();
        Activity(Arc::new(Mutex::new(State {
            phase: Phase::Idle,
            since: now,
            last_io: now,
        })))
    }
}

impl Activity {
    fn update(&self, change: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.0.lock() {
            change(&mut state);
        }
    }

    fn read(&self) {
        self.update(|state| {
            let now = Instant::now();
            state.last_io = now;
            if state.phase == Phase::Idle {
                state.phase = Phase::Head;
                state.since = now;
            }
        });
    }

    fn wrote(&self) {
        self.update(|state| state.last_io = Instant::now());
    }

    /// A request reached its handler; the returned guard marks its answer.
    pub fn request(&self) -> RequestGuard {
        self.update(|state| {
            state.phase = match state.phase {
                Phase::Busy(n) => Phase::Busy(n + 1),
                Phase::Idle | Phase::Head => Phase::Busy(1),
            };
        });
        RequestGuard(self.clone())
    }

    /// When the connection is to be closed if nothing happens before, `None` while
    /// requests are being handled.
    fn deadline(&self, timeouts: &Timeouts) -> Option<Instant> {
        let state = self.0.lock().ok()?;
        match state.phase {
            Phase::Idle => Some(state.since.max(state.last_io) + timeouts.idle),
            Phase::Head => Some(state.since + timeouts.header),
            Phase::Busy(_) => None,
        }
    }

    /// Resolves when the connection is to be closed: idle past the idle timeout, or a
    /// request head not complete within the header timeout.
    pub async fn expired(&self, timeouts: Timeouts) -> &'static str {
        loop {
            match self.deadline(&timeouts) {
                Some(deadline) if deadline <= Instant::now() => {
                    return match self.0.lock().map(|s| s.phase) {
                        Ok(Phase::Head) => "the request head took too long",
                        _ => "idle",
                    };
                }
                // Never asleep longer than the header timeout: a head that begins while
                // the watchdog waits out an idle spell is then cut within twice it.
                Some(deadline) => tokio::time::sleep_until(deadline.min(Instant::now() + timeouts.header)).await,
                None => tokio::time::sleep(timeouts.header.min(timeouts.idle)).await,
            }
        }
    }
}

/// Marks the answer of a request (dropped with the handler's future).
pub struct RequestGuard(Activity);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.update(|state| {
            state.phase = match state.phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => {
                    state.since = Instant::now();
                    Phase::Idle
                }
            };
        });
    }
}

/// The connection timeouts of the watchdog.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header: Duration,
    pub idle: Duration,
}

/// A client socket that records its reads and writes in an [`Activity`].
pub struct Watched<T> {
    inner: T,
    activity: Activity,
}

impl<T> Watched<T> {
    pub fn new(inner: T, activity: Activity) -> Self {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Why a request body ended early: no byte of it came within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("no byte of the request body came for {0:?}")]
pub struct BodyStalled(pub Duration);

/// Whether `error` (of reading a request body) is a [`BodyStalled`].
pub fn is_body_stalled(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<BodyStalled>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// A request body that fails with [`BodyStalled`] when no frame comes for `timeout`
/// while the handler waits for one, so that a stalled upload frees its memory and its
/// connection. Time the handler spends elsewhere (an import writing a batch) does not
/// count.
pub struct TimedBody<B> {
    inner: B,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Whether `sleep` runs for the current wait.
    waiting: bool,
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimedBody {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            waiting: false,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    this.sleep.as_mut().reset(Instant::now() + this.timeout);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(this.timeout))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Answers a connection past the maximum `503` with `Retry-After` and closes it, after
/// reading (a little of) its request so that the client sees the answer, not a reset.
pub async fn refuse<T: AsyncRead + AsyncWrite + Unpin>(mut stream: T) {
    const BODY: &str = r#"{"error":"too many open connections; retry later","code":"too_many_connections"}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut head = [0u8; 4096];
    let _ = tokio::time::timeout(
        Duration::from_millis(200),
        tokio::io::AsyncReadExt::read(&mut stream, &mut head),
    )
    .await;
    if stream.write_all(answer.as_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
        // Let the rest of what the client sent arrive before closing, for the same reason.
        let _ = tokio::time::timeout(Duration::from_millis(500), async {
            while matches!(tokio::io::AsyncReadExt::read(&mut stream, &mut head).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_stalls_only_while_its_handler_waits_for_it() {
        use http_body_util::BodyExt;
        let timeout = Duration::from_millis(100);
        let (sender, receiver) = tokio::sync::mpsc::channel::<Bytes>(4);
        let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
            let chunk = receiver.recv().await?;
            Some((Ok::<_, std::convert::Infallible>(Frame::data(chunk)), receiver))
        });
        let mut body = TimedBody::new(http_body_util::StreamBody::new(Box::pin(chunks)), timeout);
        sender.send(Bytes::from_static(b"a")).await.unwrap();
        // The handler is busy elsewhere for longer than the timeout: not a stall.
        tokio::time::sleep(timeout * 3).await;
        assert!(body.frame().await.unwrap().is_ok());
        let late = sender.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout / 2).await;
            late.send(Bytes::from_static(b"b")).await.unwrap();
        });
        assert!(body.frame().await.unwrap().is_ok());
        // Nothing comes while it waits: stalled.
        let started = std::time::Instant::now();
        let error = body.frame().await.unwrap().unwrap_err();
        assert!(is_body_stalled(error.as_ref()), "{error}");
        assert!(started.elapsed() >= timeout);
        drop(sender);
    }

    #[test]
    fn the_default_maximum_leaves_descriptors_for_the_rest() {
        assert_eq!(max_connections_for(1024), 896);
        assert_eq!(max_connections_for(256), 128);
        assert_eq!(max_connections_for(100), 50);
        assert_eq!(max_connections_for(0), 1);
    }
}
