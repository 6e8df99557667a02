//! The open-redirect defence, driven through the logout form (no session needed).

use crate::support::*;
use reqwest::StatusCode;

const DEFAULT: &str = "/login?logged_out=1";

async fn landing(s: &TestServer, return_to: &str) -> String {
    let res = s.browser().post_form("/auth/logout", &[("return_to", return_to)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{return_to:?}");
    res.location().expect("location").to_owned()
}

#[tokio::test]
async fn hostile_return_to_values_fall_back_to_the_default() {
    let s = TestServer::with(|c| c.redirect_allowlist.push("https://app.example.com".into())).await;
    let origin = s.origin.clone();
    let long = format!("/{}", "a".repeat(5000));
    let hostile: Vec<String> = vec![
        "//evil.com".into(),
        "///evil.com".into(),
        "////evil.com".into(),
        "/\\evil.com".into(),
        "\\\\evil.com".into(),
        "\\/evil.com".into(),
        "https:evil.com".into(),
        "http:/evil.com".into(),
        "https://evil.com".into(),
        "http://evil.com/app".into(),
        "ftp://evil.com".into(),
        "javascript:alert(1)".into(),
        "JaVaScRiPt:alert(document.cookie)".into(),
        "data:text/html,<script>alert(1)</script>".into(),
        "vbscript:msgbox(1)".into(),
        "%2F%2Fevil.com".into(),
        "/%2F%2Fevil.com".into(),
        "/%252F%252Fevil.com".into(),
        "/%5Cevil.com".into(),
        "/%09/evil.com".into(),
        "/\t/evil.com".into(),
        "/\n/evil.com".into(),
        "/\r\nLocation: https://evil.com".into(),
        "//\tevil.com".into(),
        " //evil.com".into(),
        "/ /evil.com".into(),
        "evil.com".into(),
        "@evil.com".into(),
        format!("{origin}@evil.com"),
        format!("https://user:pass@{}", origin.trim_start_matches("http://")),
        format!("http://attacker@{}/app", origin.trim_start_matches("http://")),
        format!("{origin}.evil.com/"),
        "https://app.example.com.evil.com/".into(),
        "https://evil.com#@app.example.com".into(),
        "https://evil.com\\@app.example.com".into(),
        "http://[::1]:1/".into(),
        "/\u{0}evil".into(),
        "/\u{2028}evil".into(),
        "/..//evil.com".into(),
        "/../evil.com".into(),
        "/./..//evil.com".into(),
        "/app/..//evil.com".into(),
        "/%2e%2e//evil.com".into(),
        "/%2E%2E/%2F/evil.com".into(),
        "/app/%252e%252e//evil.com".into(),
        "/.?x".into(),
        long,
        "".into(),
    ];
    assert!(hostile.len() >= 25);
    for value in &hostile {
        assert_eq!(landing(&s, value).await, DEFAULT, "accepted hostile return_to {value:?}");
    }
}

#[tokio::test]
async fn legitimate_return_to_values_are_kept() {
    let s = TestServer::with(|c| c.redirect_allowlist.push("https://app.example.com".into())).await;
    let origin = s.origin.clone();
    for (value, expected) in [
        ("/", "/".to_owned()),
        ("/app", "/app".to_owned()),
        ("/app/sessions?tab=devices#top", "/app/sessions?tab=devices#top".to_owned()),
        ("/search?q=a%20b", "/search?q=a%20b".to_owned()),
        ("/@user", "/@user".to_owned()),
        (&format!("{origin}/app"), format!("{origin}/app")),
        ("https://app.example.com/dashboard", "https://app.example.com/dashboard".to_owned()),
        ("https://APP.example.com/x", "https://app.example.com/x".to_owned()),
    ] {
        assert_eq!(landing(&s, value).await, expected, "{value:?}");
    }
}
