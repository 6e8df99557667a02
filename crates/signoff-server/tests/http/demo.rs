//! The demo site works without JavaScript, end to end.

use crate::support::*;
use reqwest::StatusCode;

fn csrf_in(html: &str) -> String {
    let start = html.find("name=\"csrf_token\" value=\"").expect("csrf field") + "name=\"csrf_token\" value=\"".len();
    html[start..].split('"').next().expect("value").to_owned()
}

#[tokio::test]
async fn register_sign_in_use_the_app_and_sign_out_with_forms() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    let page = b.get("/register").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").is_some_and(|c| c.starts_with("text/html")));
    assert!(page.text.contains("action=\"/auth/register\""));

    let res = b.post_form("/auth/register", &[("email", "demo@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/login?registered=1"));
    let res = b.post_form("/auth/register", &[("email", "demo2@example.com"), ("password", "short")]).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text.contains("at least 8"));

    // /app without a session leaves for the sign-in page and comes back after it.
    let res = b.get("/app").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/login?return_to=%2Fapp"));
    let login = b.get("/login?return_to=%2Fapp").await;
    assert!(login.text.contains("name=\"return_to\" value=\"/app\""));
    let res = b
        .post_form("/auth/login", &[("email", "demo@example.com"), ("password", PASSWORD), ("return_to", "/app")])
        .await;
    assert_eq!(res.location(), Some("/app"));

    let app = b.get("/app").await;
    assert_eq!(app.status, StatusCode::OK);
    assert_eq!(app.header("cache-control"), Some("no-store"));
    assert!(app.text.contains("demo@example.com"));
    assert!(app.text.contains("action=\"/auth/logout\""));
    let token = csrf_in(&app.text);

    let devices = b.get("/app/sessions").await;
    assert!(devices.text.contains("this device"));
    assert!(devices.text.contains("Chrome on Linux"));

    let res = b.post_form("/auth/logout", &[("csrf_token", &token)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/login?logged_out=1"));
    let res = b.get("/app").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "the protected page is gone");
    assert!(b.get("/login?logged_out=1").await.text.contains("You have been signed out"));
}

#[tokio::test]
async fn revoke_button_on_the_devices_page() {
    let s = TestServer::start().await;
    let mut a = s.signed_in("dev@example.com").await;
    let mut other = s.browser();
    other.login("dev@example.com", PASSWORD).await;
    let other_id = other.get_json("/auth/session").await.json()["session"]["id"].as_str().expect("id").to_owned();
    let page = a.get("/app/sessions").await;
    assert!(page.text.contains(&format!("/auth/sessions/{other_id}/revoke")));
    let token = csrf_in(&page.text);
    let res = a.post_form(&format!("/auth/sessions/{other_id}/revoke"), &[("csrf_token", &token)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/app/sessions?revoked=1"));
    assert_eq!(other.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(a.session_status().await, StatusCode::OK);
}

#[tokio::test]
async fn pages_escape_what_users_typed() {
    let s = TestServer::start().await;
    let mut b = s.browser();
    let res =
        b.post_form("/auth/login", &[("email", "<script>alert(1)</script>@x.com"), ("password", "whatever pw")]).await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(!res.text.contains("<script>alert(1)"));
    assert!(res.text.contains("&lt;script&gt;"));
}
