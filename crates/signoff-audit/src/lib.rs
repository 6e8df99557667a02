//! `signoff audit`: checks any web app's logout from the outside. It signs in through the app's
//! own form in a real headless Chromium, looks at the signed-in state, logs out through the
//! app's own control, and then tries what an attacker or a careless browser would: replaying
//! the old cookies, tokens and remember-me cookie from a fresh client, logging out by GET or
//! from another site, going Back, looking in storage, redirecting off-site.
//!
//! The modules: [`config`] (the TOML file), [`cdp`] (the browser on a pipe), [`tab`] (what
//! is done in one tab), [`replay`] (the fresh client), [`checks`] (the checks), [`report`]
//! (the table, JSON and HTML).

pub mod cdp;
pub mod checks;
pub mod config;
pub mod events;
pub mod replay;
pub mod report;
pub mod tab;

pub use config::AuditConfig;
pub use report::{Check, Report, Severity, Status};

/// Why an audit could not be run (a failing check is not an error: it is in the report).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Browser(#[from] cdp::CdpError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    /// The app could not be driven as the config describes (no such input, no such control,
    /// not signed in after the form).
    #[error("{0}")]
    App(String),
    #[error("cannot write {file}: {cause}")]
    Write { file: String, cause: std::io::Error },
}

/// Runs the audit the config file describes; writes the JSON and HTML reports where asked.
/// Prints the table on stdout. Returns the report (`failed()` says whether a check failed).
pub async fn run(
    config: &std::path::Path,
    json: Option<&std::path::Path>,
    html: Option<&std::path::Path>,
) -> Result<Report, AuditError> {
    let config = AuditConfig::load(config)?;
    let report = checks::audit(&config).await?;
    let write = |path: &std::path::Path, text: String| {
        std::fs::write(path, text).map_err(|cause| AuditError::Write { file: path.display().to_string(), cause })
    };
    if let Some(path) = json {
        write(path, serde_json::to_string_pretty(&report).unwrap_or_default() + "\n")?;
    }
    if let Some(path) = html {
        write(path, report.html())?;
    }
    Ok(report)
}
