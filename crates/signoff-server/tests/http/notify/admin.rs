//! The operator side: webhook-secret rotation and the pages of a client's deliveries.

use super::*;

#[tokio::test]
async fn a_rotated_webhook_secret_signs_with_both_until_the_overlap_ends() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, old) = hook_client(&s, &r).await;
    let rotate_path = format!("/admin/clients/{client_id}/webhook-secret");
    let rotate = |body: Value| admin(&s, Method::POST, &rotate_path, Some(body));
    let res = rotate(json!({"overlap_seconds": 3600})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let new = res.json()["webhook_secret"].as_str().expect("new secret").to_owned();
    assert!(new.starts_with("whsec_") && new != old);
    assert!(res.json()["previous_valid_until"].as_str().is_some_and(|t| t.ends_with('Z')));

    // During the overlap: both signatures, each accepted by the reference package.
    let mut b = s.signed_in("rotate@example.com").await;
    log_out(&mut b).await;
    let during = r.next(Duration::from_secs(5)).await;
    assert!(webhook_verified(&new, &during) && webhook_verified(&old, &during), "signed with both");
    assert_eq!(during.headers["webhook-signature"].to_str().expect("sig").split(' ').count(), 2);
    for secret in [&new, &old] {
        let out = interop(&s, std::slice::from_ref(&during), client_id.clone(), secret.clone(), "webhook")
            .await
            .expect("join")
            .expect("python3");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("notify interop ok"), "{text}");
    }
    let stranger = format!("whsec_{}", STANDARD.encode([9u8; 32]));
    let out = interop(&s, std::slice::from_ref(&during), client_id.clone(), stranger, "webhook")
        .await
        .expect("join")
        .expect("python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && text.contains("No matching signature found"), "a third secret is refused: {text}");

    // After it: the new secret only.
    s.clock.advance(time::Duration::seconds(3601));
    let mut b = s.signed_in("rotate2@example.com").await;
    log_out(&mut b).await;
    let after = r.next(Duration::from_secs(5)).await;
    assert!(webhook_verified(&new, &after) && !webhook_verified(&old, &after), "the old secret has ended");

    // Without an overlap the replaced secret stops at once.
    let res = rotate(json!({"overlap_seconds": 0})).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.json()["previous_valid_until"].is_null());
    let newest = res.json()["webhook_secret"].as_str().expect("secret").to_owned();
    let mut b = s.signed_in("rotate3@example.com").await;
    log_out(&mut b).await;
    let last = r.next(Duration::from_secs(5)).await;
    assert!(webhook_verified(&newest, &last) && !webhook_verified(&new, &last));
    assert_eq!(last.headers["webhook-signature"].to_str().expect("sig").split(' ').count(), 1);

    // Bad asks.
    assert_eq!(rotate(json!({"overlap_seconds": 8 * 24 * 3600})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(rotate(json!({"overlap_seconds": "soon"})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(rotate(json!({"overlap_seconds": -1})).await.status, StatusCode::BAD_REQUEST);
    let unknown = admin(&s, Method::POST, "/admin/clients/nobody/webhook-secret", Some(json!({}))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let bc = json!({"name": "bc only", "backchannel_logout_uri": format!("{}/bc", r.base)});
    let bc_id =
        admin(&s, Method::POST, "/admin/clients", Some(bc)).await.json()["client_id"].as_str().expect("id").to_owned();
    let res = admin(&s, Method::POST, &format!("/admin/clients/{bc_id}/webhook-secret"), Some(json!({}))).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let mut anonymous = s.browser();
    let rb = anonymous.bare(Method::POST, &format!("/admin/clients/{client_id}/webhook-secret"));
    assert_eq!(anonymous.send(rb).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deliveries_are_listed_in_pages_and_by_status() {
    let s = server().await;
    let mut r = receiver().await;
    let (client_id, _) = hook_client(&s, &r).await;
    r.script.lock().expect("lock").push_back(400);
    for i in 0..5 {
        let mut b = s.signed_in(&format!("page{i}@example.com")).await;
        log_out(&mut b).await;
        let _ = r.next(Duration::from_secs(5)).await;
    }
    let path = format!("/admin/clients/{client_id}/deliveries");
    let mut all = Vec::new();
    for _ in 0..100 {
        all = admin(&s, Method::GET, &path, None).await.json()["deliveries"].as_array().cloned().unwrap_or_default();
        if all.len() == 5 && all.iter().all(|d| d["status"] != "pending") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(all.len(), 5);
    // Two at a time, following `next`, gives the whole list in order.
    let mut paged = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..5 {
        let q = next.as_ref().map(|n| format!("&before={}", enc(n))).unwrap_or_default();
        let page = admin(&s, Method::GET, &format!("{path}?limit=2{q}"), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        paged.extend(page.json()["deliveries"].as_array().cloned().unwrap_or_default());
        next = page.json()["next"].as_str().map(str::to_owned);
        if next.is_none() {
            break;
        }
    }
    assert_eq!(paged, all, "pages follow one another without a gap or a repeat");
    let failed = admin(&s, Method::GET, &format!("{path}?status=failed"), None).await.json();
    let failed = failed["deliveries"].as_array().cloned().unwrap_or_default();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["last_status_code"], 400);
    let delivered = admin(&s, Method::GET, &format!("{path}?status=delivered&limit=200"), None).await.json();
    assert_eq!(delivered["deliveries"].as_array().map(Vec::len), Some(4));
    assert!(delivered["next"].is_null());
    for bad in ["?limit=0", "?limit=201", "?limit=x", "?status=lost", "?before=zzz", "?colour=red"] {
        let res = admin(&s, Method::GET, &format!("{path}{bad}"), None).await;
        assert_eq!(res.status, StatusCode::BAD_REQUEST, "{bad}: {}", res.text);
    }
}
