//! The outbox: claimed once, fairly, and recorded under its claim.

use std::sync::Arc;
use time::Duration;

use crate::clients::NewClient;
use crate::outbox::{DeliveryPage, DeliveryStatus, deliveries_for, parse_cursor};
use crate::revocation::{FeedEntry, Revocation};
use crate::secret::{SessionId, UserId};
use crate::store::Store;

use super::{t0, tx};

pub async fn the_outbox_is_claimed_once_and_recorded(store: Arc<dyn Store>) {
    let c =
        NewClient::generate("a".into(), Some("https://a.example/bc".into()), Some("https://a.example/h".into()), t0())
            .client;
    let quiet = NewClient::generate("b".into(), None, None, t0()).client;
    let mut t = tx(&store).await;
    t.insert_client(&c).await.expect("insert");
    t.insert_client(&quiet).await.expect("insert");
    let recipients = t.callback_clients().await.expect("recipients");
    assert_eq!(recipients, vec![c.clone()], "only clients with callback URLs");
    let ended = FeedEntry::Session(Revocation {
        session_id: SessionId::from_string("s".into()),
        user_id: UserId::from_string("u".into()),
        reason: "logout".into(),
        at: t0(),
    });
    let deliveries = deliveries_for(&[ended], &recipients, t0());
    assert_eq!(deliveries.len(), 2);
    t.enqueue_deliveries(&deliveries).await.expect("enqueue");
    t.commit().await.expect("commit");
    let claimed = store.claim_deliveries(t0(), t0() + Duration::seconds(60), 10, 10, &[]).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|d| d.claim.is_some()), "claimed under a token");
    let unclaimed = |d: &crate::outbox::Delivery| crate::outbox::Delivery { claim: None, ..d.clone() };
    assert!(claimed.iter().all(|d| deliveries.contains(&unclaimed(d))), "every field round-trips");
    assert!(
        store.claim_deliveries(t0(), t0() + Duration::seconds(60), 10, 10, &[]).await.expect("claim").is_empty(),
        "claimed once"
    );
    let later = store
        .claim_deliveries(t0() + Duration::seconds(61), t0() + Duration::seconds(121), 10, 10, &[])
        .await
        .expect("claim");
    assert_eq!(later.len(), 2, "a claim that ran out is taken over");
    let mut stale = claimed[0].clone();
    stale.status = DeliveryStatus::Delivered;
    assert!(!store.record_delivery(&stale).await.expect("record"), "only the claim's holder records");
    let mut failed = later[0].clone();
    failed.status = DeliveryStatus::Failed;
    failed.attempts = 1;
    failed.last_status_code = Some(400);
    assert!(store.record_delivery(&failed).await.expect("record"));
    let mut retry = later[1].clone();
    retry.attempts = 1;
    retry.next_attempt_at = t0() + Duration::hours(1);
    assert!(store.record_delivery(&retry).await.expect("record"));
    assert!(
        store
            .claim_deliveries(t0() + Duration::seconds(200), t0() + Duration::seconds(260), 10, 10, &[])
            .await
            .expect("claim")
            .is_empty(),
        "a failed one and one not yet due stay put"
    );
    assert_eq!(store.delivery_counts().await.expect("counts"), (1, 1));
    let page = |status, before, limit| DeliveryPage { status, before, limit };
    let listed = store.client_deliveries(&c.id, &page(None, None, 10)).await.expect("list");
    assert_eq!(listed.len(), 2);
    let first = store.client_deliveries(&c.id, &page(None, None, 1)).await.expect("list");
    let rest = store.client_deliveries(&c.id, &page(None, parse_cursor(&first[0].cursor()), 10)).await.expect("list");
    assert_eq!([first, rest].concat(), listed, "a cursor continues where a page ended");
    let failed_only =
        store.client_deliveries(&c.id, &page(Some(DeliveryStatus::Failed), None, 10)).await.expect("list");
    assert_eq!(failed_only.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&failed.id], "filtered by status");
    assert!(store.retry_delivery(&c.id, &failed.id, t0() + Duration::seconds(300)).await.expect("retry"));
    assert!(!store.retry_delivery(&c.id, &failed.id, t0()).await.expect("retry"), "only a failed one");
    assert!(!store.retry_delivery(&quiet.id, &retry.id, t0()).await.expect("retry"), "only the client's own");
    let mut delivered = store
        .claim_deliveries(t0() + Duration::seconds(400), t0() + Duration::seconds(460), 10, 10, &[])
        .await
        .expect("claim");
    assert_eq!(delivered.len(), 1, "the retried one");
    delivered[0].status = DeliveryStatus::Delivered;
    assert!(store.record_delivery(&delivered[0]).await.expect("record"));
    let pruned = store.prune_deliveries(t0() + Duration::seconds(301)).await.expect("prune");
    assert_eq!(pruned, 1, "the delivered one (a retry restarts its clock, at 300 s)");
    let old = c.webhook_secret.clone();
    let until = t0() + Duration::hours(1);
    assert!(store.rotate_webhook_secret(&c.id, "whsec_new", until, t0()).await.expect("rotate"));
    let rotated = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(rotated.webhook_secret.as_deref(), Some("whsec_new"));
    assert_eq!((rotated.previous_webhook_secret, rotated.previous_webhook_secret_until), (old, Some(until)));
    assert!(store.rotate_webhook_secret(&c.id, "whsec_next", t0(), t0()).await.expect("rotate"));
    let at_once = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(at_once.webhook_secrets(t0()), vec!["whsec_next"], "no overlap asked: the old one is dropped");
    assert_eq!(at_once.previous_webhook_secret, None);
    assert!(!store.rotate_webhook_secret(&quiet.id, "whsec_x", until, t0()).await.expect("rotate"), "no webhook URL");
    assert!(!store.rotate_webhook_secret("nobody", "whsec_x", until, t0()).await.expect("rotate"));
    store.drop_callback(&c.id, "https://a.example/h").await.expect("drop");
    let after = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!((after.webhook_url, after.backchannel_logout_uri.as_deref()), (None, Some("https://a.example/bc")));
    // Hundreds of deliveries in one transaction (many statements' worth of rows).
    let many: Vec<FeedEntry> = (0..700)
        .map(|i| {
            FeedEntry::Session(Revocation {
                session_id: SessionId::from_string(format!("s{i}")),
                user_id: UserId::from_string("u".into()),
                reason: "logout".into(),
                at: t0(),
            })
        })
        .collect();
    let recipients =
        vec![c.clone(), NewClient::generate("d".into(), Some("https://d.example/bc".into()), None, t0()).client];
    let bulk = deliveries_for(&many, &recipients, t0() + Duration::days(30));
    assert_eq!(bulk.len(), 700 * 3);
    let mut t = tx(&store).await;
    t.enqueue_deliveries(&bulk).await.expect("enqueue many");
    t.commit().await.expect("commit");
    let listed = store.client_deliveries(&c.id, &page(Some(DeliveryStatus::Pending), None, 5000)).await.expect("list");
    let written = listed.iter().filter(|d| d.created_at == t0() + Duration::days(30)).count();
    assert_eq!(written, 1400, "every row written");

    // A claim takes at most `per_endpoint` per URL, so the one other endpoint is not crowded out.
    let at = t0() + Duration::days(31);
    // Every URL's first before any URL's second: a claim of 3 with 3 URLs due takes one each.
    let first = store.claim_deliveries(at, at + Duration::seconds(60), 3, 3, &[]).await.expect("claim");
    let mut urls: Vec<&str> = first.iter().map(|d| d.url.as_str()).collect();
    urls.sort();
    assert_eq!(urls, ["https://a.example/bc", "https://a.example/h", "https://d.example/bc"], "one per URL");
    let skipped = store
        .claim_deliveries(
            at,
            at + Duration::seconds(60),
            100,
            3,
            &["https://a.example/bc".into(), "https://a.example/h".into()],
        )
        .await
        .expect("claim");
    assert!(!skipped.is_empty() && skipped.iter().all(|d| d.url == "https://d.example/bc"), "busy URLs are skipped");
    let fair = store.claim_deliveries(at, at + Duration::seconds(60), 100, 3, &[]).await.expect("claim");
    let to = |url: &str| fair.iter().filter(|d| d.url == url).count();
    assert_eq!((to("https://a.example/bc"), to("https://d.example/bc")), (3, 3), "three per endpoint");
    assert!(fair.iter().all(|d| d.claim == fair[0].claim), "one claim token per claim");
    // A release under another claim does nothing; under its own, they are claimable again.
    let back: Vec<String> = fair.iter().take(2).map(|d| d.id.clone()).collect();
    store.release_deliveries("someone-else", &back).await.expect("release");
    let all = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    assert!(all.iter().all(|d| !back.contains(&d.id)), "still held by their claim");
    store
        .release_deliveries(
            &all[0].claim.clone().expect("claim"),
            &all.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        )
        .await
        .expect("release");
    store.release_deliveries(fair[0].claim.as_deref().expect("claim"), &back).await.expect("release");
    let again = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    let mut ids: Vec<String> = again.iter().filter(|d| back.contains(&d.id)).map(|d| d.id.clone()).collect();
    ids.sort();
    let mut expected = back.clone();
    expected.sort();
    assert_eq!(ids, expected, "released ones are claimed again");
    assert!(again.iter().all(|d| !fair[2..].iter().any(|f| f.id == d.id)), "the others stay claimed");

    // A replaced webhook secret is forgotten once its overlap has ended, not before.
    let hooked = NewClient::generate("e".into(), None, Some("https://e.example/h".into()), t0()).client;
    let mut t = tx(&store).await;
    t.insert_client(&hooked).await.expect("insert");
    t.commit().await.expect("commit");
    assert!(store.rotate_webhook_secret(&hooked.id, "whsec_e2", at + Duration::hours(1), at).await.expect("rotate"));
    assert_eq!(store.forget_replaced_webhook_secrets(at).await.expect("forget"), 0);
    assert_eq!(store.forget_replaced_webhook_secrets(at + Duration::hours(1)).await.expect("forget"), 1);
    let after = store.client_by_id(&hooked.id).await.expect("read").expect("client");
    assert_eq!((after.previous_webhook_secret, after.previous_webhook_secret_until), (None, None));
    assert_eq!(after.webhook_secret.as_deref(), Some("whsec_e2"));
}
