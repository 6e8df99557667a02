//! Application state, the router, and serving with graceful shutdown.

use axum::Router;
use axum::routing::{get, post};
use signoff_core::mail::Mailer;
use signoff_core::password::Passwords;
use signoff_core::{Authority, Clock};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::backend::Backend;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::{edge, listener, routes};

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    authority: Authority,
    config: Config,
    metrics: Metrics,
    /// Flips to `true` when the server starts shutting down, so long-lived responses (event
    /// streams) end and graceful shutdown can finish.
    shutdown: watch::Sender<bool>,
    feed_waits: Arc<routes::feed::FeedWaits>,
    /// Upstream Shared Signals transmitters' keys, as last fetched.
    upstream_keys: routes::ssf_receiver::UpstreamKeys,
    mailer: Arc<dyn Mailer>,
}

impl AppState {
    /// Builds the state over a backend (or a bare store, for one process).
    pub async fn new(config: Config, backend: impl Into<Backend>, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let backend = backend.into();
        // The issuer is the public origin (`Config::serve_at` moves both together).
        anyhow::ensure!(
            config.tokens.issuer == config.public_origin,
            "the tokens' issuer ({}) is not the public origin ({}): move both with Config::serve_at",
            config.tokens.issuer,
            config.public_origin
        );
        let passwords = Passwords::new(config.password_hash_concurrency, config.password_hash_queue).await?;
        let cluster = backend.cluster(&config);
        let mut authority = Authority::new(
            backend.store.clone(),
            clock,
            config.sessions,
            config.throttle,
            config.tokens.clone(),
            passwords,
        )
        .await?;
        if let Some(cluster) = cluster {
            tracing::info!(node = cluster.node(), "joining the other nodes on this database");
            authority = authority.with_cluster(cluster);
        }
        if let Some(counters) = backend.counters {
            authority = authority.with_shared_counters(counters);
        }
        let metrics = Metrics::default();
        let feed_read = metrics.feed_read.clone();
        authority = authority.with_feed_read_timer(Arc::new(move |took| feed_read.observe(took.as_secs_f64())));
        authority = authority.with_mail_link_ttl(config.mail_token_ttl);
        let mailer = crate::backend::mailer(&config)?;
        if config.smtp_url.is_none() && !config.dev_inbox() {
            tracing::warn!(
                dir = %config.mail_dir.display(),
                "no SIGNOFF_SMTP_URL: mail to users (e-mail confirmations, password resets) is only written \
                 as .eml files; set an SMTP server for a deployment people use"
            );
        }
        let (shutdown, _) = watch::channel(false);
        Ok(Self(Arc::new(Inner {
            authority,
            config,
            metrics,
            shutdown,
            feed_waits: Arc::default(),
            upstream_keys: Default::default(),
            mailer,
        })))
    }

    pub fn authority(&self) -> &Authority {
        &self.0.authority
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Where mail to users goes (SMTP, or the `.eml` development inbox).
    pub fn mailer(&self) -> &Arc<dyn Mailer> {
        &self.0.mailer
    }

    /// Upstream Shared Signals transmitters' keys.
    pub fn upstream_keys(&self) -> &routes::ssf_receiver::UpstreamKeys {
        &self.0.upstream_keys
    }

    /// Open revocation-feed streams and waiting long-polls.
    pub fn feed_waits(&self) -> &Arc<routes::feed::FeedWaits> {
        &self.0.feed_waits
    }

    /// Resolves once the server is shutting down.
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::auth::routes())
        .merge(routes::sessions::routes())
        .merge(routes::ops::routes())
        .merge(routes::gateway::routes())
        .merge(routes::demo::routes())
        .route("/api/me", get(routes::auth::me))
        .route("/auth/logout", post(routes::logout::logout).get(routes::logout::logout_page))
        .merge(routes::account::routes())
        .merge(routes::email_flows::routes())
        .merge(routes::dev_inbox::routes())
        .merge(routes::events::routes())
        .merge(routes::admin::routes())
        .merge(routes::clients::routes())
        .merge(routes::feed::routes())
        .merge(routes::global_revocation::routes())
        .merge(routes::ssf::routes())
        .merge(routes::ssf_receiver::routes())
        .merge(routes::tokens::routes())
        .merge(routes::oidc::routes())
        .fallback(edge::not_found)
        .method_not_allowed_fallback(edge::method_not_allowed)
        // The only layer, and it must stay so: `Surface` calls the shortcut routes past the
        // router with the edge alone (`edge::around`), and would skip any layer added here.
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge::edge))
        .with_state(state)
}

/// A route's handler as [`Surface`] calls it, past the router.
type Endpoint =
    fn(axum::extract::Request, AppState) -> futures_util::future::BoxFuture<'static, axum::response::Response>;

/// The routes answered most often, called past the router: a reverse proxy asks
/// `/authz/auth-request` before every request it lets through, and apps ask `/api/me` as often.
/// Only the exact method and path; anything else (`HEAD`, a trailing slash, another method)
/// goes through the router. Each is also a route of [`router`], which answers it the same way:
/// the same handler, behind the same edge.
const SHORTCUTS: [(&str, Endpoint); 2] = [
    ("/api/me", |req, state| axum::handler::Handler::call(routes::auth::me, req, state)),
    ("/authz/auth-request", |req, state| axum::handler::Handler::call(routes::gateway::auth_request, req, state)),
];

/// The HTTP surface as the listener calls it: [`router`], and a shortcut past its matching
/// (a route look-up, the route's boxed service and its futures) for [`SHORTCUTS`].
#[derive(Clone)]
pub struct Surface {
    router: Router,
    state: AppState,
    shortcuts: &'static [(&'static str, Endpoint)],
}

impl Surface {
    pub fn new(state: AppState) -> Self {
        Self { router: router(state.clone()), state, shortcuts: &SHORTCUTS }
    }

    /// Every request through the router, none past it: what the shortcuts are compared with.
    pub fn routed(state: AppState) -> Self {
        Self { router: router(state.clone()), state, shortcuts: &[] }
    }

    /// Answers one request.
    pub async fn call<B>(&self, req: axum::http::Request<B>) -> axum::response::Response
    where
        B: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let shortcut = (req.method() == axum::http::Method::GET)
            .then(|| self.shortcuts.iter().find(|(path, _)| *path == req.uri().path()))
            .flatten();
        match shortcut {
            Some(&(route, endpoint)) => {
                let state = self.state.clone();
                // Called inside the future the edge contains, so even the call is inside its
                // panic containment.
                let inner = move |req| async move { endpoint(req, state).await };
                edge::around(&self.state, req.map(axum::body::Body::new), route, inner).await
            }
            None => {
                let mut router = self.router.clone();
                match tower_service::Service::call(&mut router, req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                }
            }
        }
    }
}

/// Background work owned by a running server; aborted when dropped.
pub struct Background(Vec<JoinHandle<()>>);

impl Background {
    /// Stops the work and waits until it has stopped (a lease being taken in flight included).
    pub async fn stop(mut self) {
        let tasks = std::mem::take(&mut self.0);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Starts the background work: the periodic sweep of expired sessions (and of the old
/// revocation feed), and the follower of the revocation feed, so what other processes revoke
/// reaches this one's caches and event streams (with its fan-out listener on several nodes).
pub async fn spawn_background(state: &AppState) -> Background {
    let sweeping = state.clone();
    let sweeper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            let authority = sweeping.authority();
            match authority.sweep_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(ended = n, "expired sessions swept"),
                Err(e) => tracing::error!(error = %e, "session sweep failed"),
            }
            match authority.prune_deliveries().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(pruned = n, "finished deliveries older than a week deleted"),
                Err(e) => tracing::error!(error = %e, "delivery prune failed"),
            }
            if let Err(e) = authority.trim_revocation_feed().await {
                tracing::error!(error = %e, "revocation feed trim failed");
            }
            // Pick up keys rotated by another process.
            if let Err(e) = authority.reload_keys().await {
                tracing::error!(error = %e, "signing key reload failed");
            }
        }
    });
    // The fan-out listener feeds the follower; without a cluster there is none and the
    // follower polls the feed.
    let (signals, received) = tokio::sync::mpsc::channel(64);
    let mut tasks = vec![sweeper];
    if let Some(fanout) = state.authority().cluster().map(|c| c.fanout().clone()) {
        tasks.push(tokio::spawn(async move { fanout.listen(signals).await }));
    }
    let delivering = state.clone();
    tasks.push(tokio::spawn(crate::delivery::run(delivering)));
    let following = state.clone();
    tasks.push(tokio::spawn(async move {
        let poll = following.config().revocation_poll;
        following.authority().follow_feed(received, poll).await;
    }));
    Background(tasks)
}

/// Serves until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let background = spawn_background(&state).await;
    let notify = state.clone();
    let shutdown = async move {
        shutdown.await;
        notify.0.shutdown.send_replace(true);
    };
    let c = state.config();
    let limits = listener::Limits {
        max_connections: c.max_connections,
        header_read_timeout: c.header_read_timeout,
        keepalive_timeout: c.keepalive_timeout,
        write_timeout: c.write_timeout,
        open: state.metrics().open_connections.clone(),
    };
    let leaving = state.clone();
    let served = listener::serve(listener, Surface::new(state), limits, shutdown).await;
    // No revoker should wait for a node that is gone: stop following (so nothing takes the
    // lease again), then give it up.
    background.stop().await;
    leaving.authority().leave_cluster().await;
    leaving.authority().close_store().await;
    served
}
