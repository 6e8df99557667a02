//! The `signoff` binary: `serve` runs the server; the other subcommands administer the store.

use anyhow::Context;
use clap::{Parser, Subcommand};
use signoff_core::SystemClock;
use signoff_server::config::Config;
use signoff_server::{AppState, backend};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::Arc;

/// See the dependency's note in Cargo.toml. Servers the tests build in-process keep the system
/// allocator; tests that start this binary run on mimalloc, as production does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "signoff", version, about = "A session authority whose logout really logs out")]
struct Cli {
    /// Configuration file (TOML); SIGNOFF_* environment variables override it.
    #[arg(long, global = true, env = "SIGNOFF_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    #[command(after_help = settings_help())]
    Serve,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage the access-token signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Administrative actions.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Check any web app's logout from the outside, in a headless Chromium: signs in through
    /// its form, logs out through its control, then replays what an attacker would. The
    /// --config file (TOML) describes the app (README.md: "Audit any app's logout"). Prints a
    /// table; exits 1 when a check fails, 2 when the audit cannot run.
    Audit {
        /// Also write the report as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Also write the report as an HTML page here.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Write a consistent copy of the SQLite store to FILE, also while servers run. To restore,
    /// stop the server and put the copy in place of the database file (PostgreSQL: pg_dump).
    Backup {
        /// Where the copy goes; must not exist yet.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Start signing with a new key; tokens of the old one stay valid until they expire.
    Rotate,
    /// Withdraw a compromised key: every token it signed stops working at once, everywhere.
    Revoke {
        /// The key's id (`kid` in the JWKS and in token headers). Key ids are base64url and
        /// may begin with `-`.
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// End every session and token of a user (a reported security concern).
    Revoke {
        /// The user's e-mail address.
        #[arg(long, required_unless_present = "user_id", conflicts_with = "user_id")]
        email: Option<String>,
        /// The user's id.
        #[arg(long)]
        user_id: Option<String>,
        /// Why, recorded in the user's audit log.
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from the first line of standard input.
    Create {
        #[arg(long)]
        email: String,
    },
}

/// The settings, for `signoff serve --help`.
fn settings_help() -> String {
    let mut out = String::from(
        "Settings: defaults, then the --config file (keys as below in lower case, without SIGNOFF_), then\n\
         environment variables, which win. README.md has the whole table.\n\n",
    );
    for (key, default, meaning) in signoff_server::config::KEYS {
        let default = if default.is_empty() { "(none)".to_owned() } else { format!("[default: {default}]") };
        out.push_str(&format!("  {} {default}\n      {meaning}\n", signoff_server::config::variable(key)));
    }
    out
}

/// Errors go to stderr as one line, each cause after a colon (a cause already said by the
/// message before it is not said twice); results go to stdout.
fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("signoff: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(code) => code,
        Err(e) => {
            let mut line = String::new();
            for cause in e.chain().map(ToString::to_string) {
                if !line.contains(&cause) {
                    line = if line.is_empty() { cause } else { format!("{line}: {cause}") };
                }
            }
            eprintln!("signoff: {line}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<std::process::ExitCode> {
    let cli = Cli::parse();
    if let Command::Audit { json, html } = &cli.command {
        return Ok(audit(cli.config.as_deref(), json.as_deref(), html.as_deref()).await);
    }
    let config = Config::load(cli.config.as_deref(), std::env::vars()).context("invalid configuration")?;
    let _logs = signoff_server::logging::init(&config).context("cannot start the log writer thread")?;
    for (name, closest) in signoff_server::config::unknown_variables(std::env::vars()) {
        match closest {
            Some(like) => tracing::warn!("{name} is not a setting and is ignored; did you mean {like}?"),
            None => tracing::warn!("{name} is not a setting and is ignored (signoff serve --help lists them)"),
        }
    }
    let done = match cli.command {
        Command::Audit { .. } => Ok(()),
        Command::Serve => serve(config).await,
        Command::User { command: UserCommand::Create { email } } => create_user(config, &email).await,
        Command::Keys { command: KeysCommand::Rotate } => rotate_keys(config).await,
        Command::Keys { command: KeysCommand::Revoke { kid } } => revoke_key(config, &kid).await,
        Command::Admin { command: AdminCommand::Revoke { email, user_id, reason } } => {
            admin_revoke(config, email.as_deref(), user_id, &reason).await
        }
        Command::Backup { file } => {
            let bytes = backend::backup(&config, &file).await?;
            println!("{}", serde_json::json!({ "backup": file.display().to_string(), "bytes": bytes }));
            Ok(())
        }
    };
    done.map(|()| std::process::ExitCode::SUCCESS)
}

/// `signoff audit`: the table on stdout; 1 when a check failed, 2 when the audit could not run
/// (the reason on stderr).
async fn audit(
    config: Option<&std::path::Path>,
    json: Option<&std::path::Path>,
    html: Option<&std::path::Path>,
) -> std::process::ExitCode {
    let Some(config) = config else {
        eprintln!(
            "signoff audit: give the app's description with --config FILE (README.md: \"Audit any app's logout\")"
        );
        return std::process::ExitCode::from(2);
    };
    // What goes wrong along the way (a browser event this build cannot read) is said on stderr.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match signoff_audit::run(config, json, html).await {
        Ok(report) => {
            print!("{}", report.table());
            if report.failed() { std::process::ExitCode::FAILURE } else { std::process::ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("signoff audit: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // The address first: a port in use is found before anything is created or migrated.
    let listener = tokio::net::TcpListener::bind(config.listen).await.map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "the address is in use (by another signoff, or another server); \
                stop it or set SIGNOFF_LISTEN to another address"
                .to_owned(),
            _ => e.to_string(),
        };
        anyhow::anyhow!("cannot listen on {} (SIGNOFF_LISTEN): {why}", config.listen)
    })?;
    let _serving = backend::claim_for_serving(&config)?;
    let backend = backend::open(&config).await?;
    tracing::info!(listen = %config.listen, public_url = %config.public_url, "signoff listening");
    tracing::info!(database = %config.database_url, redis = ?config.redis_url.as_ref().map(ToString::to_string), "backends");
    let state = AppState::new(config, backend, Arc::new(SystemClock)).await?;
    signoff_server::serve(listener, state, shutdown_signal()).await?;
    tracing::info!("signoff stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn create_user(config: Config, email: &str) -> anyhow::Result<()> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    let backend = backend::open(&config).await?;
    let state = AppState::new(config, backend, Arc::new(SystemClock)).await?;
    let user = state.authority().create_user(email, password, &cli_client()).await.map_err(|e| match e {
        signoff_core::CoreError::Store(signoff_core::StoreError::Conflict) => {
            anyhow::anyhow!("that e-mail already has an account")
        }
        e => anyhow::anyhow!("{e}"),
    })?;
    println!("{}", serde_json::json!({ "id": user.id, "email": user.email }));
    Ok(())
}

async fn rotate_keys(config: Config) -> anyhow::Result<()> {
    let backend = backend::open(&config).await?;
    let state = AppState::new(config, backend, Arc::new(SystemClock)).await?;
    let keys = state.authority().rotate_signing_key().await?;
    // `kid` is the access-token key's, as before; `keys` names every new key by algorithm.
    let kid = keys.first().map(|(_, kid)| kid.clone());
    let by_alg: serde_json::Map<_, _> = keys.into_iter().map(|(alg, kid)| (alg.to_string(), kid.into())).collect();
    println!("{}", serde_json::json!({ "kid": kid, "keys": by_alg }));
    Ok(())
}

async fn revoke_key(config: Config, kid: &str) -> anyhow::Result<()> {
    let backend = backend::open(&config).await?;
    let state = AppState::new(config, backend, Arc::new(SystemClock)).await?;
    let replacement = state.authority().revoke_signing_key(kid).await.map_err(|e| match e {
        signoff_core::CoreError::NotFound => anyhow::anyhow!("no signing key with kid {kid}"),
        e => anyhow::anyhow!("{e}"),
    })?;
    println!("{}", serde_json::json!({ "revoked": kid, "new_signing_kid": replacement }));
    Ok(())
}

async fn admin_revoke(
    config: Config,
    email: Option<&str>,
    user_id: Option<String>,
    reason: &str,
) -> anyhow::Result<()> {
    let backend = backend::open(&config).await?;
    let state = AppState::new(config, backend, Arc::new(SystemClock)).await?;
    let authority = state.authority();
    let user = match (email, user_id) {
        (Some(email), _) => authority.user_by_email(email).await?,
        (None, Some(id)) => authority.user(&signoff_core::UserId::from_string(id)).await?,
        (None, None) => None,
    }
    .context("no such user")?;
    let ended = authority.admin_revoke(&user.id, reason, &cli_client()).await?;
    println!("{}", serde_json::json!({ "user": { "id": user.id, "email": user.email }, "revoked": ended }));
    Ok(())
}

/// Audit events of CLI actions name the CLI as their client.
fn cli_client() -> signoff_core::ClientInfo {
    signoff_core::ClientInfo {
        ip: "cli".into(),
        user_agent: Some(format!("signoff-cli/{}", env!("CARGO_PKG_VERSION"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_may_begin_with_a_hyphen() {
        // Key ids are base64url: one in 64 begins with `-`, and must not be taken for a flag.
        let cli = Cli::try_parse_from(["signoff", "keys", "revoke", "-FiSJsaW-fygD8xqI7tyvg"]).expect("parses");
        assert!(
            matches!(cli.command, Command::Keys { command: KeysCommand::Revoke { kid } } if kid == "-FiSJsaW-fygD8xqI7tyvg")
        );
    }
}
