//! The signoff HTTP server: the contract's edge over the lifecycle core.
//!
//! Layout:
//! - [`app`]: state, router, serving with graceful shutdown and background tasks.
//! - [`edge`]: middleware every request passes (request id, headers, panics, access log).
//! - [`remember`]: middleware that signs a browser back in from its remember-me cookie.
//! - [`routes`]: handlers, one module per part of the contract, plus the demo site.
//! - [`extract`], [`cookies`], [`csrf`], [`redirect`]: the request-facing rules.
//! - [`error`]: the one `ApiError` and its mapping to stable codes.
//! - [`callback`]: registered clients' callback URLs and the SSRF guard.
//! - [`delivery`]: the outbox worker (back-channel logout, webhooks, mail).
//! - [`letters`], [`mailer`]: what mail to users says, and the transports that send it.
//! - [`views`], [`html`]: response shapes.
//! - [`config`], [`backend`], [`metrics`]: operations.

pub mod app;
pub mod backend;
pub mod callback;
pub mod config;
pub mod cookies;
pub mod csrf;
pub mod delivery;
pub mod edge;
pub mod error;
pub mod error_page;
pub mod extract;
pub mod html;
pub mod letters;
pub mod listener;
pub mod log_writer;
pub mod logging;
pub mod mailer;
pub mod metrics;
pub mod redirect;
pub mod remember;
pub mod routes;
pub mod views;

pub use app::{AppState, Surface, router, serve};
pub use config::Config;
