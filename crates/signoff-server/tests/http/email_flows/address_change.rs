//! Changing the address: asked alike for taken and free addresses, confirmed by link, limited per target, resent after a failed send.

use super::*;

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
