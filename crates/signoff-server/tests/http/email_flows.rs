//! The e-mail flows over HTTP, with the mail read from the development inbox (and once from a
//! real SMTP server): a verified change of address and a password reset, each ending what the
//! contract says on the very next request, and their links refused once used, expired,
//! tampered with, or outdated by another change.

use crate::everywhere::{listen, revoked, token_version};
use crate::support::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use signoff_testdb::SmtpServer;

/// A sign-in's status (`Browser::login` insists on success).
async fn login_status(s: &TestServer, email: &str, password: &str) -> StatusCode {
    s.browser().post_json("/auth/login", &json!({"email": email, "password": password})).await.status
}

/// A password grant: `(access, refresh)`.
async fn tokens(s: &TestServer, email: &str) -> (String, String) {
    let mut b = s.browser();
    let res =
        b.post_json("/auth/token", &json!({"grant_type": "password", "email": email, "password": PASSWORD})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let body = res.json();
    (body["access_token"].as_str().expect("access").into(), body["refresh_token"].as_str().expect("refresh").into())
}

/// Whether the access token still reaches `/api/me`, and the refresh token still refreshes.
async fn tokens_live(s: &TestServer, (access, refresh): &(String, String)) -> (bool, bool) {
    let mut b = s.browser();
    let rb = b.bare(Method::GET, "/api/me").header("authorization", format!("Bearer {access}"));
    let me = b.send(rb).await.status == StatusCode::OK;
    let res = b.post_json("/auth/token", &json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
    (me, res.status == StatusCode::OK)
}

/// A browser signed in with "keep me signed in", holding only its remember-me cookie.
async fn remembered(s: &TestServer, email: &str) -> Browser {
    let mut b = s.browser();
    let res = b.post_json("/auth/login", &json!({"email": email, "password": PASSWORD, "remember_me": true})).await;
    assert_eq!(res.status, StatusCode::OK);
    b.jar.remove("__Host-signoff_session");
    b
}

/// The outbox's mail rows to `address`: `(event, status)`, oldest first; the registration's
/// letter (queued for every registration, sent only to a taken address) left out.
async fn mail_rows(s: &TestServer, address: &str) -> Vec<(String, String)> {
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT event, status, payload FROM deliveries WHERE kind = 'mail' ORDER BY created_at, id")
            .fetch_all(&s.db().await)
            .await
            .expect("rows");
    rows.into_iter()
        .filter(|(event, _, payload)| {
            event != "mail.registration" && serde_json::from_str::<Value>(payload).expect("json")["to"] == address
        })
        .map(|(event, status, _)| (event, status))
        .collect()
}

async fn deliveries_to(s: &TestServer, address: &str) -> usize {
    mail_rows(s, address).await.len()
}

/// Waits (up to 10 s) until no mail row to `address` is pending, and returns the rows.
async fn settled(s: &TestServer, address: &str) -> Vec<(String, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows = mail_rows(s, address).await;
        if rows.iter().all(|(_, status)| status != "pending") {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "mail to {address} still pending: {rows:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A page with the exact instants of its `<time>` elements left out (they differ by the
/// milliseconds between two requests).
fn without_instants(page: &str) -> String {
    let mut out = String::new();
    let mut rest = page;
    while let Some(i) = rest.find("<time ") {
        out.push_str(&rest[..i]);
        let end = rest[i..].find('>').expect("tag end");
        rest = &rest[i + end + 1..];
    }
    out + rest
}

fn instant(rfc3339: &str) -> time::OffsetDateTime {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).expect("an RFC 3339 time")
}

fn change(new: &str) -> Value {
    json!({"current_password": PASSWORD, "new_email": new})
}

#[tokio::test]
async fn an_email_change_answers_alike_for_taken_and_free_addresses() {
    let s = TestServer::start().await;
    let taken = s.register("taken@example.com").await;
    let mut me = s.signed_in("me@example.com").await;
    let to_taken = me.post_json("/auth/email", &change(&taken)).await;
    // The security page shows the change waiting for its link, taken address or not, and the
    // link's end is the same either way: an hour from the request (the link mailed to a free
    // address takes the place of the placeholder that stood for it, times and all).
    let taken_page = me.get("/app/security").await.text;
    let to_free = me.post_json("/auth/email", &change("free@example.com")).await;
    s.inbox().wait_for("free@example.com", 1).await;
    let free_page = me.get("/app/security").await.text;
    let events = me.get_json("/auth/audit").await.json()["events"].clone();
    let asked: Vec<time::OffsetDateTime> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "email_change_requested")
        .map(|e| instant(e["at"].as_str().expect("at")))
        .collect();
    assert_eq!(asked.len(), 2);
    for (page, address, at) in [(&taken_page, taken.as_str(), asked[1]), (&free_page, "free@example.com", asked[0])] {
        let shown =
            format!("Waiting for confirmation: <strong>{address}</strong>. The link mailed there stops working");
        assert!(page.contains(&shown), "{page}");
        let pending = &page[page.find("Waiting for confirmation").expect("pending")..];
        let until = pending.split("datetime=\"").nth(1).and_then(|t| t.split('"').next()).expect("a time");
        assert_eq!(instant(until), at + time::Duration::hours(1), "{address}: an hour from the request");
    }
    assert_eq!(
        without_instants(&taken_page.replace(&taken, "ADDRESS")),
        without_instants(&free_page.replace("free@example.com", "ADDRESS")),
        "the page says the same either way"
    );
    for res in [&to_taken, &to_free] {
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
        assert_eq!(res.json(), json!({"status": "verification_sent"}));
    }
    assert_eq!(to_taken.set_cookies(), to_free.set_cookies(), "no cookie says anything either");
    // The current address hears of both; only the free address gets a link.
    let notices = s.inbox().wait_for("me@example.com", 2).await;
    for n in &notices {
        assert_eq!(n.subject, "A change of your e-mail address was asked for");
        assert!(!n.text.contains("token="), "a notice carries no link: {}", n.text);
    }
    assert!(notices[0].text.contains(&taken) && notices[1].text.contains("free@example.com"));
    let link = s.inbox().wait_for("free@example.com", 1).await;
    assert_eq!(link[0].subject, "Confirm your new e-mail address");
    assert_eq!(deliveries_to(&s, &taken).await, 0, "nothing was ever queued for the taken address");
    assert!(s.inbox().to(&taken).is_empty());
    // A wrong password is still a 401, and a malformed address a 422; nothing is mailed.
    let res = me.post_json("/auth/email", &json!({"current_password": "wrong", "new_email": "x@example.com"})).await;
    assert_eq!((res.status, res.json()["error"].clone()), (StatusCode::UNAUTHORIZED, json!("invalid_credentials")));
    let res = me.post_json("/auth/email", &change("not an address")).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(deliveries_to(&s, "x@example.com").await, 0);
    // Nothing changed yet: the old address still signs in, the new one does not.
    assert_eq!(me.session_status().await, StatusCode::OK);
    assert_eq!(login_status(&s, "me@example.com", PASSWORD).await, StatusCode::OK);
    assert_eq!(login_status(&s, "free@example.com", PASSWORD).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn confirming_a_new_address_ends_every_other_session_and_token_on_the_very_next_request() {
    let s = TestServer::start().await;
    let mut me = s.signed_in("old@example.com").await;
    let mut other = s.browser();
    other.login("old@example.com", PASSWORD).await;
    let mut kept = remembered(&s, "old@example.com").await;
    let pair = tokens(&s, "old@example.com").await;
    let mut stranger = s.signed_in("stranger@example.com").await;
    let other_events = listen(&other).await;
    let old_sid = me.get_json("/auth/session").await.json()["session"]["id"].clone();

    assert_eq!(me.post_json("/auth/email", &change(" New@Example.com ")).await.status, StatusCode::ACCEPTED);
    let mail = s.inbox().wait_for("new@example.com", 1).await;
    let link = link_in(&mail[0].text);
    assert!(link.starts_with(&format!("{}/auth/email/confirm?token=", s.base)), "{link}");
    assert!(mail[0].text.contains("works once, until"), "{}", mail[0].text);

    // Following the link (as a mail scanner does) only shows a page whose button posts it.
    let page = s.browser().get(&link[s.base.len()..]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("referrer-policy"), Some("same-origin"), "the token in the URL goes to no other site");
    assert!(page.text.contains("action=\"/auth/email/confirm\""), "{}", page.text);
    assert!(page.text.contains(&format!("name=\"token\" value=\"{}\"", token_of(&link))));
    assert_eq!(other.session_status().await, StatusCode::OK, "a GET changes nothing");

    let res = me.post_json("/auth/email/confirm", &json!({"token": token_of(&link)})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["status"], "email_changed");
    assert_eq!(res.json()["user"]["email"], "new@example.com");
    assert_eq!(res.json()["session"]["id"], me.get_json("/auth/session").await.json()["session"]["id"]);
    me.csrf = Some(res.json()["csrf_token"].as_str().expect("the rotated session's CSRF token").to_owned());
    // This browser is kept, under a new id; everything else of the user is dead at once.
    let now = me.get_json("/auth/session").await;
    assert_eq!(now.status, StatusCode::OK);
    assert_eq!(now.json()["user"]["email"], "new@example.com");
    assert_ne!(now.json()["session"]["id"], old_sid, "rotated");
    assert_eq!(other.session_status().await, StatusCode::UNAUTHORIZED);
    assert_eq!(kept.session_status().await, StatusCode::UNAUTHORIZED, "the remember-me series died");
    assert_eq!(tokens_live(&s, &pair).await, (false, false), "access and refresh tokens died");
    assert_eq!(token_version(&s, "new@example.com").await, 1);
    assert_eq!(revoked(other_events).await["reason"], "email_changed");
    assert_eq!(stranger.session_status().await, StatusCode::OK, "nobody else is touched");
    let others = me.post_json("/auth/logout", &json!({"scope": "others"})).await;
    assert_eq!(others.status, StatusCode::OK, "the returned CSRF token works: {}", others.text);
    assert_eq!(login_status(&s, "old@example.com", PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_status(&s, "new@example.com", PASSWORD).await, StatusCode::OK);
    // Used once.
    let again = me.post_json("/auth/email/confirm", &json!({"token": token_of(&link)})).await;
    assert_eq!((again.status, again.json()["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_token")));
    let events = me.get_json("/auth/audit").await.json()["events"].clone();
    let kinds: Vec<&str> = events.as_array().expect("events").iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"email_change_requested") && kinds.contains(&"email_changed"), "{kinds:?}");
}

#[tokio::test]
async fn a_link_confirmed_from_another_browser_ends_every_session_of_the_user() {
    let s = TestServer::start().await;
    let mut me = s.signed_in("roam@example.com").await;
    assert_eq!(me.post_json("/auth/email", &change("roamed@example.com")).await.status, StatusCode::ACCEPTED);
    let link = link_in(&s.inbox().wait_for("roamed@example.com", 1).await[0].text);
    // Posted with the user's cookie but without its CSRF token (as a cross-site form could):
    // no session is kept, that one included.
    let mut phone = s.browser();
    phone.login("roam@example.com", PASSWORD).await;
    phone.csrf = None;
    let res = phone.post_form("/auth/email/confirm", &[("token", &token_of(&link))]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert_eq!(res.location(), Some("/login?email_changed=1"));
    let cookies = res.set_cookies();
    assert!(!cookies.is_empty() && cookies.iter().all(|c| c.contains("Max-Age=0")), "only deletions: {cookies:?}");
    assert_eq!(phone.session_status().await, StatusCode::UNAUTHORIZED, "the posting browser's session ended too");
    assert_eq!(me.session_status().await, StatusCode::UNAUTHORIZED, "no session of the user is kept");
}

#[tokio::test]
async fn a_password_reset_ends_every_session_and_token_this_browser_included() {
    let s = TestServer::start().await;
    let email = s.register("forgot@example.com").await;
    let mut here = s.browser();
    here.login(&email, PASSWORD).await;
    let here_cookie = here.session_cookie().cloned().expect("cookie");
    let mut there = s.browser();
    there.login(&email, PASSWORD).await;
    let mut kept = remembered(&s, &email).await;
    let pair = tokens(&s, &email).await;
    let there_events = listen(&there).await;

    // Known and unknown addresses get the same answer.
    let mut anon = s.browser();
    let known = anon.post_json("/auth/password-reset", &json!({"email": "Forgot@Example.com"})).await;
    let unknown = anon.post_json("/auth/password-reset", &json!({"email": "nobody@example.com"})).await;
    let garbage = anon.post_json("/auth/password-reset", &json!({"email": "not an address"})).await;
    for res in [&known, &unknown, &garbage] {
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text);
        assert_eq!(res.json(), json!({"status": "reset_requested"}));
    }
    let mail = s.inbox().wait_for(&email, 1).await;
    assert_eq!(mail[0].subject, "Reset your password");
    let link = link_in(&mail[0].text);
    assert!(link.starts_with(&format!("{}/auth/password-reset/confirm?token=", s.base)), "{link}");
    // The unknown address cost the same (an outbox row) and got nothing; the one that is no
    // address wrote nothing.
    assert_eq!(settled(&s, "nobody@example.com").await, vec![("mail.password_reset".into(), "skipped".into())]);
    assert!(s.inbox().to("nobody@example.com").is_empty());
    let resets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM deliveries WHERE event = 'mail.password_reset'")
        .fetch_one(&s.db().await)
        .await
        .expect("count");
    assert_eq!(resets, 2);
    let page = s.browser().get(&link[s.base.len()..]).await;
    assert!(page.text.contains("name=\"new_password\""), "{}", page.text);
    assert_eq!(here.session_status().await, StatusCode::OK, "asking and opening the page change nothing");

    // A weak password is refused and nothing changes; the link still works after.
    let weak = here
        .post_json("/auth/password-reset/confirm", &json!({"token": token_of(&link), "new_password": "password"}))
        .await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", weak.text);
    assert_eq!(there.session_status().await, StatusCode::OK);

    let res = here
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token_of(&link), "new_password": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["status"], "password_reset");
    assert!(res.json()["revoked"].as_u64().is_some_and(|n| n >= 3), "{}", res.text);
    assert!(res.header("clear-site-data").is_some(), "this browser is told to forget the sign-in");
    assert!(here.session_cookie().is_none(), "this browser's cookies are cleared");
    here.jar.insert("__Host-signoff_session".into(), here_cookie);
    assert_eq!(here.session_status().await, StatusCode::UNAUTHORIZED, "and its session is dead on the server");
    // Every session, this browser's included, is dead on the very next request.
    for (name, b) in [("there", &mut there), ("remembered", &mut kept)] {
        assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED, "{name}");
    }
    assert_eq!(tokens_live(&s, &pair).await, (false, false), "access and refresh tokens died");
    assert_eq!(token_version(&s, &email).await, 1);
    assert_eq!(revoked(there_events).await["reason"], "password_reset");
    assert_eq!(login_status(&s, &email, PASSWORD).await, StatusCode::UNAUTHORIZED, "old password");
    let mut back = s.browser();
    assert_eq!(back.login(&email, "a brand new passphrase").await.status, StatusCode::OK);
    // Used once; the account hears the password was reset.
    let again = back
        .post_json(
            "/auth/password-reset/confirm",
            &json!({"token": token_of(&link), "new_password": "yet another passphrase"}),
        )
        .await;
    assert_eq!((again.status, again.json()["error"].clone()), (StatusCode::BAD_REQUEST, json!("invalid_token")));
    let mail = s.inbox().wait_for(&email, 2).await;
    assert_eq!(mail[1].subject, "Your password was reset");
    assert!(!mail[1].text.contains("token="));
    let events = back.get_json("/auth/audit").await.json()["events"].clone();
    let kinds: Vec<&str> = events.as_array().expect("events").iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"password_reset_requested") && kinds.contains(&"password_reset"), "{kinds:?}");
}

/// Asks for a reset link for `email` (the `nth` so far) and returns its token.
async fn reset_token(s: &TestServer, email: &str, nth: usize) -> String {
    let res = s.browser().post_json("/auth/password-reset", &json!({"email": email})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let links: Vec<Message> =
            s.inbox().to(email).into_iter().filter(|m| m.subject == "Reset your password").collect();
        if links.len() >= nth {
            return token_of(&link_in(&links[nth - 1].text));
        }
        assert!(std::time::Instant::now() < deadline, "reset link {nth} never came");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn reset_with(s: &TestServer, token: &str) -> Res {
    s.browser()
        .post_json("/auth/password-reset/confirm", &json!({"token": token, "new_password": "a brand new passphrase"}))
        .await
}

#[tokio::test]
async fn a_reset_link_dies_on_expiry_tampering_a_newer_link_and_any_other_password_change() {
    let s = TestServer::with(|c| {
        c.mail_token_ttl = time::Duration::seconds(600);
        c.password_reset_max_per_email = 100;
    })
    .await;
    let email = s.register("links@example.com").await;
    let invalid = |res: &Res| res.status == StatusCode::BAD_REQUEST && res.json()["error"] == "invalid_token";

    // Expired.
    let token = reset_token(&s, &email, 1).await;
    s.clock.advance(time::Duration::seconds(601));
    assert!(invalid(&reset_with(&s, &token).await), "expired");

    // Tampered, malformed, missing.
    let token = reset_token(&s, &email, 2).await;
    let mut flipped = token.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    for bad in [String::from_utf8(flipped).expect("ascii"), token[..42].to_owned(), format!("{token}x"), "%00".into()] {
        assert!(invalid(&reset_with(&s, &bad).await), "{bad}");
    }
    let res =
        s.browser().post_json("/auth/password-reset/confirm", &json!({"new_password": "a brand new passphrase"})).await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST);

    // Only the newest link works.
    let newest = reset_token(&s, &email, 3).await;
    assert!(invalid(&reset_with(&s, &token).await), "superseded");

    // The password changed by another path (signed in): the link dies.
    let mut b = s.browser();
    assert_eq!(b.login(&email, PASSWORD).await.status, StatusCode::OK);
    let res = b
        .post_json("/auth/password", &json!({"current_password": PASSWORD, "new_password": "changed the usual way"}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert!(invalid(&reset_with(&s, &newest).await), "outdated by a password change");

    // So does a link when every session is ended ("log out everywhere").
    let token = reset_token(&s, &email, 4).await;
    let mut b = s.browser();
    assert_eq!(b.login(&email, "changed the usual way").await.status, StatusCode::OK);
    assert!(b.post_json("/auth/logout", &json!({"scope": "global"})).await.status.is_success());
    assert!(invalid(&reset_with(&s, &token).await), "outdated by a global logout");
    // And an e-mail change link is dead once the password was reset.
    let mut b = s.browser();
    assert_eq!(b.login(&email, "changed the usual way").await.status, StatusCode::OK);
    let res = b
        .post_json(
            "/auth/email",
            &json!({"current_password": "changed the usual way", "new_email": "elsewhere@example.com"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let change = token_of(&link_in(&s.inbox().wait_for("elsewhere@example.com", 1).await[0].text));
    let reset = reset_token(&s, &email, 5).await;
    assert_eq!(reset_with(&s, &reset).await.status, StatusCode::OK);
    let res = s.browser().post_json("/auth/email/confirm", &json!({"token": change})).await;
    assert!(invalid(&res), "an e-mail change asked for before a reset does not survive it: {}", res.text);
    assert!(login_status(&s, "elsewhere@example.com", "a brand new passphrase").await == StatusCode::UNAUTHORIZED);
}

/// Asks for a password reset as if from the client address `ip` (the server trusts
/// `X-Forwarded-For`).
async fn reset_from(b: &mut Browser, ip: &str, email: &str) -> Res {
    crate::abuse::post_from(b, ip, "/auth/password-reset", json!({ "email": email })).await
}

#[tokio::test]
async fn reset_requests_are_throttled_per_address_and_per_client() {
    let s = TestServer::with(|c| {
        c.trust_proxy = true;
        c.password_reset_max_per_email = 2;
        c.password_reset_max_per_ip = 4;
        c.password_reset_max_per_mailbox = 5;
    })
    .await;
    s.register("limited@example.com").await;
    let mut b = s.browser();
    for _ in 0..2 {
        assert_eq!(reset_from(&mut b, "192.0.2.1", "limited@example.com").await.status, StatusCode::ACCEPTED);
    }
    let res = reset_from(&mut b, "192.0.2.1", "limited@example.com").await;
    assert_eq!(res.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.json()["error"], "too_many_attempts");
    assert!(res.header("retry-after").is_some());
    // An address without an account counts alike (the limit tells nothing).
    for _ in 0..2 {
        assert_eq!(reset_from(&mut b, "192.0.2.1", "ghost@example.com").await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(reset_from(&mut b, "192.0.2.1", "ghost@example.com").await.status, StatusCode::TOO_MANY_REQUESTS);
    // This client has asked four times: another address is refused too.
    assert_eq!(reset_from(&mut b, "192.0.2.1", "third@example.com").await.status, StatusCode::TOO_MANY_REQUESTS);
    // Someone else's requests do not lock the owner out of their own recovery: from the owner's
    // address the owner still gets a link (the outside review's finding 5).
    assert_eq!(reset_from(&mut b, "198.51.100.7", "limited@example.com").await.status, StatusCode::ACCEPTED);
    assert_eq!(s.inbox().wait_for("limited@example.com", 3).await.len(), 3);
    // But the mailbox as a whole has a cap, from every client together: no inbox is flooded.
    assert_eq!(reset_from(&mut b, "198.51.100.8", "limited@example.com").await.status, StatusCode::ACCEPTED);
    assert_eq!(reset_from(&mut b, "198.51.100.9", "limited@example.com").await.status, StatusCode::ACCEPTED);
    assert_eq!(
        reset_from(&mut b, "198.51.100.10", "limited@example.com").await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "five requests for one mailbox in an hour, from any clients, is the cap"
    );
    s.clock.advance(time::Duration::minutes(61));
    assert_eq!(reset_from(&mut b, "192.0.2.1", "limited@example.com").await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_link_pages_work_as_plain_forms_and_the_dev_inbox_links_them() {
    let s = TestServer::start().await;
    let email = s.register("forms@example.com").await;
    let mut b = s.browser();
    let login = b.get("/login").await;
    assert!(login.text.contains("href=\"/auth/password-reset\""), "Forgot password? on the sign-in page");
    let page = b.get("/auth/password-reset").await;
    assert!(page.text.contains("action=\"/auth/password-reset\""), "{}", page.text);
    let res = b.post_form("/auth/password-reset", &[("email", &email)]).await;
    assert_eq!((res.status, res.location()), (StatusCode::SEE_OTHER, Some("/auth/password-reset?sent=1")));
    let sent = b.get("/auth/password-reset?sent=1").await;
    assert!(sent.text.contains("href=\"/dev/mail\""), "in development the inbox is linked");
    let link = link_in(&s.inbox().wait_for(&email, 1).await[0].text);
    let inbox = b.get("/dev/mail").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.text.contains(&format!("<a href=\"{}\">", link.replace('&', "&amp;"))), "{}", inbox.text);
    // A weak password re-shows the form with the error; a good one leads to sign in.
    let weak =
        b.post_form("/auth/password-reset/confirm", &[("token", &token_of(&link)), ("new_password", "password")]).await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(weak.text.contains("name=\"new_password\""));
    let done = b
        .post_form(
            "/auth/password-reset/confirm",
            &[("token", &token_of(&link)), ("new_password", "a brand new passphrase")],
        )
        .await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, Some("/login?reset=1")));
    let used = b
        .post_form(
            "/auth/password-reset/confirm",
            &[("token", &token_of(&link)), ("new_password", "a brand new passphrase")],
        )
        .await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST);
    assert!(used.text.contains("href=\"/auth/password-reset\""), "a way to ask again");
    // A link page echoes only a well-formed token.
    for path in
        ["/auth/password-reset/confirm?token=%3Cscript%3E", "/auth/email/confirm", "/auth/email/confirm?token=x"]
    {
        let res = b.get(path).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(res.text.contains("This link is incomplete") && !res.text.contains("<script>"), "{path}");
        assert!(!res.text.contains("name=\"token\""), "{path}: no form");
    }
    // Outside development (an SMTP server configured, or listening beyond loopback) there is
    // no inbox page.
    let smtp =
        TestServer::with(|c| c.smtp_url = Some(signoff_server::config::SecretUrl("smtp://127.0.0.1:1".into()))).await;
    assert_eq!(smtp.browser().get("/dev/mail").await.status, StatusCode::NOT_FOUND);
    let open = TestServer::with(|c| c.listen.set_ip(std::net::Ipv4Addr::UNSPECIFIED.into())).await;
    assert_eq!(open.browser().get("/dev/mail").await.status, StatusCode::NOT_FOUND);
}

/// What reached `smtp`, parsed by Python's own `email` package: headers, and both bodies.
fn received(smtp: &SmtpServer) -> Vec<Value> {
    const PARSE: &str = r#"
import json, mailbox, sys
out = []
for _, msg in sorted(mailbox.Maildir(sys.argv[1], create=False).items(), key=lambda kv: kv[1]["Date"]):
    parts = {p.get_content_type(): p.get_payload(decode=True).decode(p.get_content_charset() or "utf-8")
             for p in msg.walk() if not p.is_multipart()}
    out.append({k.lower(): msg[k] for k in ("From", "To", "Subject", "Date", "Message-ID")}
               | {"type": msg.get_content_type(), "text": parts.get("text/plain"), "html": parts.get("text/html")})
print(json.dumps(out))
"#;
    if !smtp.maildir.join("new").exists() {
        return Vec::new();
    }
    let out = std::process::Command::new("python3").args(["-c", PARSE]).arg(&smtp.maildir).output().expect("python3");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

#[tokio::test]
async fn reset_mail_reaches_a_real_smtp_server_whole() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let s = TestServer::with(|c| c.smtp_url = Some(signoff_server::config::SecretUrl(url))).await;
    let email = s.register("smtp@example.com").await;
    let res = s.browser().post_json("/auth/password-reset", &json!({"email": email})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let got = loop {
        let got = received(&smtp);
        if !got.is_empty() {
            break got;
        }
        assert!(std::time::Instant::now() < deadline, "no mail reached the SMTP server");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m["to"], "smtp@example.com");
    assert_eq!(m["subject"], "Reset your password");
    assert_eq!(m["type"], "multipart/alternative");
    assert!(m["from"].as_str().is_some_and(|f| f.starts_with("signoff <no-reply@")), "{m}");
    assert!(m["date"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(m["message-id"].as_str().is_some_and(|id| id.starts_with('<') && id.ends_with("@127.0.0.1>")), "{m}");
    let link = link_in(m["text"].as_str().expect("text part"));
    assert!(m["html"].as_str().expect("html part").contains(&format!("href=\"{link}\"")));
    // The link from the real mail works, once.
    assert_eq!(reset_with(&s, &token_of(&link)).await.status, StatusCode::OK);
    assert_eq!(reset_with(&s, &token_of(&link)).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_reset_link_used_by_racing_requests_works_exactly_once() {
    let s = TestServer::with(|c| {
        c.password_reset_max_per_email = 100;
        c.password_reset_max_per_ip = 100;
    })
    .await;
    let email = s.register("race@example.com").await;
    for round in 1..=12 {
        let token = reset_token(&s, &email, round).await;
        let racers: Vec<_> = (0..3)
            .map(|i| {
                let (base, origin, token) = (s.base.clone(), s.origin.clone(), token.clone());
                tokio::spawn(async move {
                    let body = json!({"token": token, "new_password": format!("round {round} racer {i} passphrase")});
                    let res = reqwest::Client::new()
                        .post(format!("{base}/auth/password-reset/confirm"))
                        .header("origin", origin)
                        .header("accept", "application/json")
                        .json(&body)
                        .send()
                        .await
                        .expect("send");
                    (i, res.status())
                })
            })
            .collect();
        let mut won = Vec::new();
        for racer in racers {
            let (i, status) = racer.await.expect("racer");
            match status {
                StatusCode::OK => won.push(i),
                StatusCode::BAD_REQUEST => {}
                other => panic!("round {round}: racer {i} got {other}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one racer sets the password, not {won:?}");
        // The password is the winner's.
        let winner = format!("round {round} racer {} passphrase", won[0]);
        assert_eq!(login_status(&s, &email, &winner).await, StatusCode::OK, "round {round}");
    }
}

#[tokio::test]
async fn a_hanging_mail_server_delays_no_answer_and_its_mail_survives_a_restart() {
    // A "mail server" that accepts connections and never says a word.
    let hanging = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("smtp://127.0.0.1:{}", hanging.local_addr().expect("addr").port());
    let s = TestServer::with(|c| c.smtp_url = Some(signoff_server::config::SecretUrl(url))).await;
    let patient = s.register("patient@example.com").await;
    let mut mover = s.signed_in("mover@example.com").await;
    let started = std::time::Instant::now();
    let res = s.browser().post_json("/auth/password-reset", &json!({"email": patient})).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    let res = mover.post_json("/auth/email", &change("moved-on@example.com")).await;
    assert_eq!(res.status, StatusCode::ACCEPTED);
    // Someone mistypes the new address and asks again: the older request must not outlive it.
    let mut typo = s.signed_in("typo@example.com").await;
    for to in ["typo-a@example.com", "typo-b@example.com"] {
        assert_eq!(typo.post_json("/auth/email", &change(to)).await.status, StatusCode::ACCEPTED);
    }
    // Well under the mail server's 10 s timeout: nothing waited for it.
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "answered in {:?}", started.elapsed());
    // The mail is in the outbox, not sent. Meanwhile the mover changes the password: the link
    // asked for before must never be made.
    assert_eq!(deliveries_to(&s, &patient).await + deliveries_to(&s, "moved-on@example.com").await, 2);
    let new = json!({"current_password": PASSWORD, "new_password": "changed while the mail waited"});
    assert_eq!(mover.post_json("/auth/password", &new).await.status, StatusCode::OK);
    // The process goes away mid-send; the next one, with a working mail server, sends what is
    // still due once the dead process's claims have run out.
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let s = s.restart_with(|c| c.smtp_url = Some(signoff_server::config::SecretUrl(url))).await;
    s.clock.advance(time::Duration::minutes(2));
    assert_eq!(
        settled(&s, "moved-on@example.com").await,
        vec![("mail.email_change".into(), "skipped".into())],
        "no link for an account that changed since"
    );
    assert_eq!(settled(&s, "typo-a@example.com").await, vec![("mail.email_change".into(), "skipped".into())]);
    settled(&s, "typo-b@example.com").await;
    settled(&s, "typo@example.com").await;
    settled(&s, &patient).await;
    settled(&s, "mover@example.com").await;
    let got = received(&smtp);
    let mut sent: Vec<(&str, &str)> =
        got.iter().map(|m| (m["to"].as_str().unwrap_or_default(), m["subject"].as_str().unwrap_or_default())).collect();
    sent.sort();
    assert_eq!(
        sent,
        vec![
            ("mover@example.com", "A change of your e-mail address was asked for"),
            ("patient@example.com", "Reset your password"),
            ("typo-b@example.com", "Confirm your new e-mail address"),
            ("typo@example.com", "A change of your e-mail address was asked for"),
            ("typo@example.com", "A change of your e-mail address was asked for"),
        ],
        "each due mail once"
    );
    let reset = got.iter().find(|m| m["subject"] == "Reset your password").expect("reset mail");
    let link = link_in(reset["text"].as_str().expect("text"));
    assert_eq!(reset_with(&s, &token_of(&link)).await.status, StatusCode::OK);
    let confirm = got.iter().find(|m| m["to"] == "typo-b@example.com").expect("the newer link");
    let token = token_of(&link_in(confirm["text"].as_str().expect("text")));
    let res = s.browser().post_json("/auth/email/confirm", &json!({"token": token})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["user"]["email"], "typo-b@example.com");
    let mut mover = s.browser();
    mover.login("mover@example.com", "changed while the mail waited").await;
    assert!(!mover.get("/app/security").await.text.contains("Waiting for confirmation"), "nothing is pending");
    drop(hanging);
}

#[tokio::test]
async fn links_to_one_new_address_are_limited_whichever_accounts_ask() {
    let s = TestServer::start().await;
    let target = "popular@example.com";
    for i in 0..3 {
        let mut b = s.signed_in(&format!("asker{i}@example.com")).await;
        assert_eq!(b.post_json("/auth/email", &change(target)).await.status, StatusCode::ACCEPTED);
    }
    let mut b = s.signed_in("asker3@example.com").await;
    let res = b.post_json("/auth/email", &change(target)).await;
    assert_eq!((res.status, res.json()["error"].clone()), (StatusCode::TOO_MANY_REQUESTS, json!("too_many_attempts")));
    assert!(res.header("retry-after").is_some());
    assert_eq!(b.post_json("/auth/email", &change("elsewhere@example.com")).await.status, StatusCode::ACCEPTED);
    assert_eq!(s.inbox().wait_for(target, 3).await.len(), 3);
}

#[tokio::test]
async fn a_change_link_whose_first_send_failed_is_sent_on_the_retry() {
    // Nothing listens here: the first attempt makes the link, then cannot send it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("smtp://127.0.0.1:{closed}");
    let s = TestServer::with(|c| c.smtp_url = Some(signoff_server::config::SecretUrl(url))).await;
    let mut me = s.signed_in("retry@example.com").await;
    assert_eq!(me.post_json("/auth/email", &change("retried@example.com")).await.status, StatusCode::ACCEPTED);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (attempts, status): (i64, String) =
            sqlx::query_as("SELECT attempts, status FROM deliveries WHERE event = 'mail.email_change'")
                .fetch_one(&s.db().await)
                .await
                .expect("row");
        if attempts >= 1 {
            assert_eq!(status, "pending", "a refused connection is worth a retry");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt was made");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let s = s.restart_with(|c| c.smtp_url = Some(signoff_server::config::SecretUrl(url))).await;
    s.clock.advance(time::Duration::minutes(2));
    assert_eq!(settled(&s, "retried@example.com").await, vec![("mail.email_change".into(), "delivered".into())]);
    let got = received(&smtp);
    let link = got.iter().find(|m| m["to"] == "retried@example.com").expect("the link");
    let token = token_of(&link_in(link["text"].as_str().expect("text")));
    let res = s.browser().post_json("/auth/email/confirm", &json!({"token": token})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

/// The series of a `/metrics` text, less the responses counter that the scrapes themselves move,
/// the gauges of this process's caches and connections (they follow the tester's own requests,
/// not the addresses asked for) and the node's own reads of the revocation feed (on several
/// nodes they run on a timer).
fn moving_series(text: &str) -> std::collections::BTreeMap<String, f64> {
    let own = [
        "signoff_http_responses",
        "signoff_open_connections",
        "signoff_cached_sessions",
        "signoff_verified_tokens",
        "signoff_feed_read",
        "signoff_feed_head",
        "signoff_node_",
    ];
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.contains("_bucket") && !l.contains("_sum") && !l.contains("_created"))
        .filter(|l| !own.iter().any(|o| l.starts_with(o)))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_owned(), v.parse::<f64>().ok()?))))
        .collect()
}

/// Waits until `/metrics` shows `line`, and returns the text.
async fn metrics_once(b: &mut Browser, line: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = b.get("/metrics").await.text;
        if text.lines().any(|l| l == line) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "never saw {line:?} in:\n{text}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Nothing anonymous tells a known address from an unknown one, `/metrics` included (the second
/// outside review's finding 3: a reset request moved the delivery histogram only for an address
/// with an account). A reset for each moves every series alike; and `/metrics` can be closed to
/// anyone without the metrics key.
#[tokio::test]
async fn metrics_move_alike_for_known_and_unknown_addresses() {
    let s = TestServer::start().await;
    s.register("known@example.com").await;
    let mut b = s.browser();
    // The registration's own letter is processed first (the outbox works in the background).
    let before =
        moving_series(&metrics_once(&mut b, "signoff_mail_processed_total{letter=\"mail.registration\"} 1").await);
    let ask = |email: &str| json!({ "email": email });
    assert_eq!(b.post_json("/auth/password-reset", &ask("known@example.com")).await.status, StatusCode::ACCEPTED);
    s.inbox().wait_for("known@example.com", 1).await;
    let known =
        moving_series(&metrics_once(&mut b, "signoff_mail_processed_total{letter=\"mail.password_reset\"} 1").await);
    assert_eq!(b.post_json("/auth/password-reset", &ask("nobody@example.com")).await.status, StatusCode::ACCEPTED);
    let unknown =
        moving_series(&metrics_once(&mut b, "signoff_mail_processed_total{letter=\"mail.password_reset\"} 2").await);
    let delta = |from: &std::collections::BTreeMap<String, f64>, to: &std::collections::BTreeMap<String, f64>| {
        to.iter()
            .filter_map(|(k, v)| {
                let moved = v - from.get(k).copied().unwrap_or(0.0);
                (moved != 0.0).then(|| (k.clone(), moved))
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(delta(&before, &known), delta(&known, &unknown), "a known and an unknown address move the same series");

    // A change of address to a taken one and to a free one move the same series too.
    s.register("taken@example.com").await;
    let mut me = s.signed_in("changer@example.com").await;
    let change = |new: &str| json!({"current_password": PASSWORD, "new_email": new});
    let start =
        moving_series(&metrics_once(&mut me, "signoff_mail_processed_total{letter=\"mail.registration\"} 3").await);
    assert_eq!(me.post_json("/auth/email", &change("taken@example.com")).await.status, StatusCode::ACCEPTED);
    let taken = moving_series(
        &metrics_once(&mut me, "signoff_mail_processed_total{letter=\"mail.email_change_notice\"} 1").await,
    );
    assert_eq!(me.post_json("/auth/email", &change("free@example.com")).await.status, StatusCode::ACCEPTED);
    s.inbox().wait_for("free@example.com", 1).await;
    let free = moving_series(
        &metrics_once(&mut me, "signoff_mail_processed_total{letter=\"mail.email_change_notice\"} 2").await,
    );
    assert_eq!(delta(&start, &taken), delta(&taken, &free), "a taken and a free address move the same series");

    // With a metrics key, /metrics answers only to it.
    let key = "metrics-key-0123456789abcdef0123456789abcdef";
    let s = TestServer::with(|c| c.metrics_token = Some(signoff_server::config::AdminKey(key.into()))).await;
    let mut b = s.browser();
    assert_eq!(b.get("/metrics").await.status, StatusCode::UNAUTHORIZED);
    let wrong = b.bare(Method::GET, "/metrics").bearer_auth("metrics-key-but-not-the-right-one-0123456789");
    assert_eq!(b.send(wrong).await.status, StatusCode::UNAUTHORIZED);
    let right = b.bare(Method::GET, "/metrics").bearer_auth(key);
    let res = b.send(right).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.text.contains("signoff_logins_total"), "{}", res.text);
}
