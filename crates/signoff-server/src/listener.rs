//! Accepting connections with bounds an anonymous client cannot stretch: a cap on open
//! connections, a deadline for a request's headers (slowloris), a keep-alive idle timeout, and
//! a deadline for a client that stops taking what it is sent.
//!
//! - The cap is a semaphore: at `max_connections` the loop stops accepting and new clients wait
//!   in the kernel's listen backlog until a connection closes (the timeouts below make sure
//!   one does). The same permits tell graceful shutdown when every connection has finished.
//! - [`Idle`] wraps the socket and keeps both deadlines, while no request is in flight (none
//!   being handled, no response body still streaming, so event streams are never cut): a
//!   request's headers must be complete within `header_read_timeout` of the moment the
//!   connection was ready for it (just accepted, or its previous response done), however they
//!   trickle in, and a connection that sends nothing for `keepalive_timeout` is closed. (Not
//!   hyper's own header timer: it makes and registers a timer for every request.) In flight
//!   or not, a connection whose writes have waited `write_timeout` with nothing taken is closed
//!   (a client that stops reading, with requests pipelined behind the answers it leaves).

use axum::body::Body;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::{Instant, Sleep};

/// How long in-flight requests may take to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The connection bounds, and where to report how many connections are open.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub write_timeout: Duration,
    pub open: Arc<std::sync::atomic::AtomicU64>,
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then lets open
/// connections finish their requests and close.
pub async fn serve(
    listener: TcpListener,
    app: crate::app::Surface,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut closed = closed.clone();
        let timeouts = Timeouts {
            keepalive: limits.keepalive_timeout,
            header_read: limits.header_read_timeout,
            write: limits.write_timeout,
        };
        let open = OpenGuard::new(limits.open.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let _open = open;
            let in_flight = Arc::new(InFlight::default());
            let written = Arc::new(Written::default());
            let io = TokioIo::new(Idle::new(stream, in_flight.clone(), written.clone(), timeouts));
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(Connection { peer, written: written.clone() });
                let guard = InFlight::enter(&in_flight);
                let app = app.clone();
                async move {
                    let res = app.call(req).await;
                    Ok::<_, std::convert::Infallible>(res.map(|b| Body::new(Tracked { inner: b, _guard: guard })))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                // The header read timeout is the socket's (`Idle`): hyper's would make and
                // register a timer for every request, as it starts reading the next head.
                .header_read_timeout(None)
                .serve_connection(io, service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = closed.wait_for(|c| *c) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    let _ = closing.send(true);
    // Every permit back means every connection has finished; one that will not finish (a
    // client that stops reading) is cut when the grace ends.
    let all = slots.acquire_many(u32::try_from(limits.max_connections).unwrap_or(u32::MAX));
    if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
        tracing::warn!("connections still open after the shutdown grace; closing them");
    }
    Ok(())
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<std::sync::atomic::AtomicU64>);

impl OpenGuard {
    fn new(open: Arc<std::sync::atomic::AtomicU64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests of one connection being handled or still streaming their response, and when the
/// last one ended.
#[derive(Debug)]
struct InFlight {
    count: AtomicUsize,
    last_done: Mutex<Instant>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self { count: AtomicUsize::new(0), last_done: Mutex::new(Instant::now()) }
    }
}

impl InFlight {
    fn enter(this: &Arc<Self>) -> InFlightGuard {
        this.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(this.clone())
    }

    /// When the connection went idle, if it is idle.
    fn idle_since(&self) -> Option<Instant> {
        (self.count.load(Ordering::SeqCst) == 0).then(|| *self.last_done.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        *self.0.last_done.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        self.0.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight until it is done.
struct Tracked {
    inner: Body,
    _guard: InFlightGuard,
}

impl http_body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// What a request knows of its connection: the peer's address and its flushes. One extension,
/// not two: each costs every request an insert into its extension map.
#[derive(Debug, Clone)]
pub struct Connection {
    pub peer: SocketAddr,
    pub written: Arc<Written>,
}

/// How often a connection has written out everything it was handed: hyper flushes the socket
/// only once its own buffer is empty, so each flush means all that came before it is in the
/// kernel (a client that reads too slowly holds it back). Every request of the connection
/// carries it, so a stream can tell when what it gave has left (see `routes/feed.rs`).
#[derive(Debug, Default)]
pub struct Written {
    flushes: std::sync::atomic::AtomicU64,
    flushed: tokio::sync::Notify,
}

impl Written {
    fn flushed(&self) {
        self.flushes.fetch_add(1, std::sync::atomic::Ordering::Release);
        self.flushed.notify_waiters();
    }

    /// Waits, at most `limit`, for the connection's next flush; whether it came. Call it before
    /// the connection gets its next turn (the awaiting task is the connection's own).
    pub async fn next_flush(&self, limit: Duration) -> bool {
        let before = self.flushes.load(std::sync::atomic::Ordering::Acquire);
        let flushed = self.flushed.notified();
        tokio::pin!(flushed);
        flushed.as_mut().enable();
        if self.flushes.load(std::sync::atomic::Ordering::Acquire) > before {
            return true;
        }
        tokio::time::timeout(limit, flushed).await.is_ok()
    }
}

/// How long a connection may wait with no request in flight.
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    /// Since it was last ready for a request or last received anything.
    keepalive: Duration,
    /// Since it was last ready for a request, however it trickles in (slowloris).
    header_read: Duration,
    /// Of a write the client takes nothing of (a client that stops reading, its socket full).
    write: Duration,
}

/// A socket that fails its reads, which makes hyper close it, when no request is in flight and
/// either nothing has been received for the keep-alive timeout or no whole request head within
/// the header read timeout since the connection was last ready for one (accepted, or its last
/// response done). One timer a connection, moved only when a deadline comes sooner.
struct Idle {
    inner: TcpStream,
    in_flight: Arc<InFlight>,
    written: Arc<Written>,
    timeouts: Timeouts,
    last_read: Instant,
    timer: Pin<Box<Sleep>>,
    /// The deadline of a write waiting for the client to take something (made on the first
    /// such wait), and whether it runs (set when a write waits, cleared when one goes through).
    stalled: Option<Pin<Box<Sleep>>>,
    stall_running: bool,
}

impl Idle {
    fn new(inner: TcpStream, in_flight: Arc<InFlight>, written: Arc<Written>, timeouts: Timeouts) -> Self {
        let now = Instant::now();
        let timer = Box::pin(tokio::time::sleep_until(now + timeouts.keepalive.min(timeouts.header_read)));
        Self { inner, in_flight, written, timeouts, last_read: now, timer, stalled: None, stall_running: false }
    }

    /// A write's outcome, failed once writes have waited `timeouts.write` with no progress:
    /// whether or not a request is in flight, a client that stops reading (a full socket, a
    /// pipelined request waiting behind the answers it does not take) holds a connection only
    /// so long. Any progress starts the wait over.
    fn progress<T>(&mut self, cx: &mut Context<'_>, done: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        if done.is_ready() {
            // The timer is kept for the next wait (a client that reads slowly waits often).
            self.stall_running = false;
            return done;
        }
        let deadline = Instant::now() + self.timeouts.write;
        let timer = match &mut self.stalled {
            Some(timer) => {
                if !self.stall_running {
                    timer.as_mut().reset(deadline);
                }
                timer
            }
            None => self.stalled.insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        self.stall_running = true;
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "client not reading")));
        }
        Poll::Pending
    }
}

impl AsyncRead for Idle {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last_read = Instant::now();
                }
                return Poll::Ready(r);
            }
            Poll::Pending => {}
        }
        loop {
            let Timeouts { keepalive, header_read, .. } = this.timeouts;
            let deadline = match this.in_flight.idle_since() {
                // Ready for a request since `done`: hyper is reading the next head, if any.
                Some(done) => (done.max(this.last_read) + keepalive).min(done + header_read),
                // A request is being answered: check again a timeout from now. The shorter one:
                // hyper does not read when the answer is done (it waits for the socket), so the
                // deadlines from then on are only looked at when this one passes.
                None => Instant::now() + keepalive.min(header_read),
            };
            if Instant::now() >= deadline {
                return Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "keep-alive idle")));
            }
            // A deadline only moved later (each request moves it) keeps the timer as it is: it
            // wakes this early, at most once a timeout, and is set again then. Moving a timer
            // costs more than the rest of this read.
            if this.timer.is_elapsed() || deadline < this.timer.deadline() {
                this.timer.as_mut().reset(deadline);
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let done = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, done)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            self.written.flushed();
        }
        // A TCP socket's flush never waits (nor counts as progress): writes do.
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let done = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, done)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
