//! When a receiver fails: retries with one webhook-id, Retry-After, refusals and 410, and several nodes draining one outbox.

use super::*;

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_one_webhook_id_and_a_hanging_one_never_slows_a_logout() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, secret) = hook_client(&s, &r).await;
    r.script.lock().expect("lock").extend([503, 500]);
    let mut b = s.signed_in("retry@example.com").await;
    let user = b.get_json("/auth/session").await.json()["user"]["id"].as_str().expect("user").to_owned();
    let res = admin(&s, Method::POST, &format!("/admin/users/{user}/revoke"), Some(json!({"reason": "x"}))).await;
    assert_eq!(res.status, StatusCode::OK);
    // Two webhooks (session.ended, user.token_version); each first answered 503 or 500.
    let first = [r.next(Duration::from_secs(5)).await, r.next(Duration::from_secs(5)).await];
    // Once both attempts are recorded, retries are due about 2 s later by the server's clock
    // (moved on here).
    let path = format!("/admin/clients/{client_id}/deliveries");
    let mut recorded = false;
    for _ in 0..100 {
        let list = admin(&s, Method::GET, &path, None).await.json();
        recorded = list["deliveries"].as_array().is_some_and(|d| {
            d.len() == 2
                && d.iter().all(|x| {
                    x["status"] == "pending"
                        && x["attempts"] == 1
                        && x["last_status_code"].as_i64().is_some_and(|c| c >= 500)
                })
        });
        if recorded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recorded, "both attempts recorded as pending with their 5xx");
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "no retry before it is due");
    s.clock.advance(time::Duration::seconds(3));
    let again = [r.next(Duration::from_secs(5)).await, r.next(Duration::from_secs(5)).await];
    let ids = |v: &[Received]| {
        let mut ids: Vec<String> = v.iter().map(|x| x.headers["webhook-id"].to_str().expect("id").to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&first), ids(&again), "a retry carries the same webhook-id");
    assert!(again.iter().all(|g| webhook_verified(&secret, g)));
    let types: Vec<String> = again
        .iter()
        .map(|g| serde_json::from_str::<Value>(&g.body).expect("json")["type"].as_str().expect("t").to_owned())
        .collect();
    assert!(
        types.contains(&"session.ended".to_owned()) && types.contains(&"user.token_version".to_owned()),
        "{types:?}"
    );
    let mut done = false;
    for _ in 0..50 {
        let list = admin(&s, Method::GET, &format!("/admin/clients/{client_id}/deliveries"), None).await.json();
        done = list["deliveries"]
            .as_array()
            .is_some_and(|d| d.iter().all(|x| x["status"] == "delivered" && x["attempts"] == 2));
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "delivered on the second attempt");

    // A receiver that never answers: the logout is as fast as ever, and another client's
    // endpoint is served meanwhile.
    *r.hang.lock().expect("lock") = true;
    let mut other = receiver().await;
    let hook = json!({"name": "other", "webhook_url": format!("{}/hook", other.base)});
    assert_eq!(admin(&s, Method::POST, "/admin/clients", Some(hook)).await.status, StatusCode::CREATED);
    let mut b = s.signed_in("hang@example.com").await;
    let csrf = b.get_json("/auth/session").await.json()["csrf_token"].as_str().expect("csrf").to_owned();
    let started = Instant::now();
    let rb = b
        .request(Method::POST, "/auth/logout")
        .header("x-csrf-token", csrf)
        .header("accept", "application/json")
        .json(&json!({}));
    assert_eq!(b.send(rb).await.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_millis(500), "logout took {:?}", started.elapsed());
    let _ = r.next(Duration::from_secs(5)).await;
    let served = other.next(Duration::from_secs(2)).await;
    assert_eq!(serde_json::from_str::<Value>(&served.body).expect("json")["type"], "session.ended");
    // And again, while the hanging endpoint still holds its first delivery.
    let mut b2 = s.signed_in("hang2@example.com").await;
    log_out(&mut b2).await;
    let _ = other.next(Duration::from_secs(2)).await;
    assert_eq!(b.session_status().await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refusal_fails_the_delivery_and_gone_stops_the_url_and_an_admin_can_retry() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, _) = hook_client(&s, &r).await;
    let path = format!("/admin/clients/{client_id}/deliveries");
    let deliveries = || admin(&s, Method::GET, &path, None);

    // 400: failed at once, no retry; an admin's retry sends it again.
    r.script.lock().expect("lock").push_back(400);
    let mut b = s.signed_in("refused@example.com").await;
    log_out(&mut b).await;
    let first = r.next(Duration::from_secs(5)).await;
    let mut failed = Value::Null;
    for _ in 0..50 {
        let list = deliveries().await.json();
        if let Some(d) = list["deliveries"].as_array().and_then(|d| d.iter().find(|x| x["status"] == "failed")) {
            failed = d.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((failed["last_status_code"].as_i64(), failed["attempts"].as_i64()), (Some(400), Some(1)), "{failed}");
    assert_eq!(failed["last_error"], "scripted 400", "the receiver's own words: {failed}");
    let metrics = s.browser().get("/metrics").await.text;
    assert!(metrics.contains("signoff_deliveries_failed 1"), "{metrics}");
    assert!(metrics.contains("signoff_deliveries_pending 0"), "{metrics}");
    assert!(metrics.contains("signoff_delivery_seconds_count{outcome=\"refused\"} 1"), "timed: {metrics}");
    s.clock.advance(time::Duration::hours(1));
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "a 4xx is not retried");
    let id = failed["id"].as_str().expect("id");
    let retried = admin(&s, Method::POST, &format!("/admin/clients/{client_id}/deliveries/{id}/retry"), None).await;
    assert_eq!(retried.status, StatusCode::NO_CONTENT);
    let again = r.next(Duration::from_secs(5)).await;
    assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"]);
    let nope = admin(&s, Method::POST, &format!("/admin/clients/{client_id}/deliveries/{id}/retry"), None).await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND, "only a failed delivery can be retried");

    // 410: the URL is gone for good, and the client no longer has it.
    r.script.lock().expect("lock").push_back(410);
    let mut b = s.signed_in("gone@example.com").await;
    log_out(&mut b).await;
    let _ = r.next(Duration::from_secs(5)).await;
    let mut gone = false;
    for _ in 0..50 {
        let clients = admin(&s, Method::GET, "/admin/clients", None).await.json();
        gone = clients["clients"]
            .as_array()
            .is_some_and(|c| c.iter().any(|x| x["client_id"] == client_id.as_str() && x["webhook_url"].is_null()));
        if gone {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "a 410 removes the webhook URL");
    let mut b = s.signed_in("after@example.com").await;
    log_out(&mut b).await;
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "nothing more is sent to a gone URL");
}

#[tokio::test]
async fn two_nodes_draining_one_outbox_send_each_delivery_once() {
    let a = server().await;
    let b = a.sibling_with(configure).await;
    let mut r = receiver().await;
    hook_client(&a, &r).await;
    // Logouts through both nodes; both nodes' workers drain the one outbox.
    a.register("twice@example.com").await;
    for i in 0..20 {
        let node = if i % 2 == 0 { &a } else { &b };
        let mut browser = node.browser();
        browser.login("twice@example.com", PASSWORD).await;
        log_out(&mut browser).await;
    }
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(r.next(Duration::from_secs(5)).await.headers["webhook-id"].to_str().expect("id").to_owned());
    }
    assert!(r.nothing_for(Duration::from_millis(1500)).await, "no delivery made twice");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "each of the 20 logouts delivered once");
}

#[tokio::test]
async fn a_429_is_retried_no_sooner_than_its_retry_after() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, _) = hook_client(&s, &r).await;
    for (case, retry_after) in [("seconds", "120".to_owned()), ("date", String::new())] {
        let wait = if retry_after.is_empty() {
            // Two minutes from the server's clock, as an HTTP date.
            let at = std::time::SystemTime::from(s.clock.now() + time::Duration::seconds(120));
            httpdate::fmt_http_date(at)
        } else {
            retry_after
        };
        *r.retry_after.lock().expect("lock") = Some(wait);
        r.script.lock().expect("lock").push_back(429);
        let mut b = s.signed_in(&format!("busy-{case}@example.com")).await;
        log_out(&mut b).await;
        let first = r.next(Duration::from_secs(5)).await;
        let path = format!("/admin/clients/{client_id}/deliveries?status=pending");
        let mut pending = Value::Null;
        for _ in 0..100 {
            let list = admin(&s, Method::GET, &path, None).await.json();
            if let Some(d) = list["deliveries"].as_array().and_then(|d| d.iter().find(|x| x["attempts"] == 1)) {
                pending = d.clone();
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(pending["last_status_code"], 429, "{case}: {pending}");
        let at = |v: &Value| {
            time::OffsetDateTime::parse(v.as_str().expect("time"), &time::format_description::well_known::Rfc3339)
                .expect("rfc3339")
        };
        let delay = at(&pending["next_attempt_at"]) - s.clock.now();
        assert!(delay >= time::Duration::seconds(115), "{case}: retried after {delay}, not the asked two minutes");
        s.clock.advance(time::Duration::seconds(60));
        assert!(r.nothing_for(Duration::from_millis(1500)).await, "{case}: retried before its Retry-After");
        s.clock.advance(time::Duration::seconds(65));
        let again = r.next(Duration::from_secs(5)).await;
        assert_eq!(again.headers["webhook-id"], first.headers["webhook-id"], "{case}");
        all_delivered(&s, &client_id, if case == "seconds" { 1 } else { 2 }).await;
    }
}
