//! How mail goes out: plain-form link pages and the dev inbox, a real SMTP server, a hanging one, and metrics that tell no address from another.

use super::*;

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
