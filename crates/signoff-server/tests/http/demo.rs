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

    // A new address and a taken one get the same answer (so does the API); the page says what
    // happened either way, and the owner of the taken address is told by mail.
    let res = b.post_form("/auth/register", &[("email", "demo@example.com"), ("password", PASSWORD)]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(res.location(), Some("/login?registered=1"));
    assert!(res.set_cookies().is_empty());
    let taken =
        b.post_form("/auth/register", &[("email", "demo@example.com"), ("password", "another long passphrase")]).await;
    assert_eq!(
        (taken.status, taken.location()),
        (res.status, res.location()),
        "a taken address is told apart by nothing"
    );
    assert_eq!(taken.text, res.text);
    assert!(taken.set_cookies().is_empty());
    let page = b.get("/login?registered=1").await;
    assert!(
        page.text.contains("If the address is new, your account is ready") && !page.text.contains("Account created")
    );
    let notice = s.inbox().wait_for("demo@example.com", 1).await;
    assert_eq!(notice.len(), 1, "one mail: the notice of the second, not a welcome for the first");
    assert!(notice[0].text.contains("It already has one, so nothing was created"), "{}", notice[0].text);
    let res = b.post_form("/auth/register", &[("email", "demo2@example.com"), ("password", "short")]).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text.contains("At least 8") || res.text.contains("at least 8"));
    assert!(res.text.contains("data-url=\"/register\""), "a reload asks for the form, not the post");

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

/// Messages are true and sit on the form that failed; the link pages say what they are about,
/// and a spent link offers no button.
#[tokio::test]
async fn form_errors_are_true_and_on_their_form_and_links_say_what_they_do() {
    let s = TestServer::start().await;
    let mut b = s.signed_in("truth@example.com").await;
    let page = b.get("/app/security").await;
    let token = csrf_in(&page.text);
    assert!(!page.text.contains("value=\"truth@example.com\""), "New e-mail is not pre-filled with the current one");
    let wrong = b
        .post_form(
            "/auth/password",
            &[
                ("csrf_token", &token),
                ("current_password", "not the password"),
                ("new_password", "a brand new passphrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("The current password is wrong."), "{}", wrong.text);
    assert!(!wrong.text.contains("e-mail or password"), "{}", wrong.text);
    let on_password = wrong.text.find("The current password is wrong.").expect("message");
    let email_form = wrong.text.find("action=\"/auth/email\"").expect("email form");
    assert!(on_password < email_form, "the message sits on the password form");
    let json = b
        .post_json(
            "/auth/password",
            &serde_json::json!({"current_password": "nope nope", "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(json.json()["message"], "the current password is wrong");
    let email = b
        .post_form(
            "/auth/email",
            &[("csrf_token", &token), ("current_password", "not the password"), ("new_email", "new@example.com")],
        )
        .await;
    let on_email = email.text.find("The current password is wrong.").expect("message");
    assert!(on_email > email.text.find("action=\"/auth/email\"").expect("email form"), "on the e-mail form");

    // The confirmation page names the address; once used, the link offers nothing.
    let asked = b
        .post_form(
            "/auth/email",
            &[("csrf_token", &token), ("current_password", PASSWORD), ("new_email", "truth2@example.com")],
        )
        .await;
    assert_eq!(asked.status, StatusCode::SEE_OTHER);
    let mail = s.inbox().wait_for("truth2@example.com", 1).await;
    let link = link_in(&mail[0].text);
    let path = link.trim_start_matches(&s.origin).to_owned();
    let confirm = b.get(&path).await;
    assert!(confirm.text.contains("<strong>truth2@example.com</strong>"), "{}", confirm.text);
    assert!(confirm.text.contains("truth@example.com"), "the signed-in header on the confirm page");
    let token = csrf_in(&confirm.text);
    let done = b.post_form("/auth/email/confirm", &[("token", &token_of(&link)), ("csrf_token", &token)]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let spent = b.get(&path).await;
    assert_eq!(spent.status, StatusCode::BAD_REQUEST);
    assert!(spent.text.contains("cannot be used any more") && !spent.text.contains("<button"), "{}", spent.text);

    // The icon browsers ask for.
    let icon = b.get("/favicon.ico").await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
}
