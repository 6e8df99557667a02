//! The outbox: claimed once, fairly, and recorded under its claim; listed, retried and pruned;
//! written in bulk; and the webhook secrets and callbacks deliveries are sent with.

use std::sync::Arc;
use time::Duration;

use crate::clients::{Endpoint, EndpointKind, NewClient, RegisteredClient};
use crate::feed::{FeedEntry, Revocation};
use crate::outbox::{Delivery, DeliveryPage, DeliveryStatus, deliveries_for, parse_cursor};
use crate::secret::{SessionId, UserId};
use crate::store::Store;

use super::{t0, tx};

/// A client with both callbacks (and one with none), stored.
async fn clients(store: &Arc<dyn Store>) -> (RegisteredClient, RegisteredClient) {
    let c = NewClient::generate(
        "a".into(),
        vec![Endpoint::backchannel_logout("https://a.example/bc"), Endpoint::webhook("https://a.example/h")],
        t0(),
    )
    .client;
    let quiet = NewClient::generate("b".into(), vec![], t0()).client;
    let mut t = tx(store).await;
    t.insert_client(&c).await.expect("insert");
    t.insert_client(&quiet).await.expect("insert");
    t.commit().await.expect("commit");
    (c, quiet)
}

/// `count` ended sessions of one user.
fn ended(count: usize) -> Vec<FeedEntry> {
    (0..count)
        .map(|i| {
            FeedEntry::Session(Revocation {
                session_id: SessionId::from_string(format!("s{i}")),
                user_id: UserId::from_string("u".into()),
                reason: "logout".into(),
                at: t0(),
            })
        })
        .collect()
}

/// Enqueues `deliveries` in one transaction.
async fn enqueue(store: &Arc<dyn Store>, deliveries: &[Delivery]) {
    let mut t = tx(store).await;
    t.enqueue_deliveries(deliveries).await.expect("enqueue");
    t.commit().await.expect("commit");
}

/// The two deliveries of one ended session to `c`, claimed at once and recorded: one failed
/// (`400`), one to retry an hour later. Returns (failed, retried).
async fn recorded(store: &Arc<dyn Store>, c: &RegisteredClient) -> (Delivery, Delivery) {
    enqueue(store, &deliveries_for(&ended(1), std::slice::from_ref(c), t0())).await;
    let claimed = store.claim_deliveries(t0(), t0() + Duration::seconds(60), 10, 10, &[]).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let mut failed = claimed[0].clone();
    failed.status = DeliveryStatus::Failed;
    failed.attempts = 1;
    failed.last_status_code = Some(400);
    assert!(store.record_delivery(&failed).await.expect("record"));
    let mut retry = claimed[1].clone();
    retry.attempts = 1;
    retry.next_attempt_at = t0() + Duration::hours(1);
    assert!(store.record_delivery(&retry).await.expect("record"));
    (failed, retry)
}

pub async fn deliveries_are_claimed_once_and_recorded_only_under_their_claim(store: Arc<dyn Store>) {
    let (c, _) = clients(&store).await;
    let mut t = tx(&store).await;
    let recipients = t.callback_clients().await.expect("recipients");
    assert_eq!(recipients, vec![c.clone()], "only clients with callback URLs");
    // A transaction reads the clients it has just inserted.
    let hooked = NewClient::generate("e".into(), vec![Endpoint::webhook("https://e.example/h")], t0()).client;
    t.insert_client(&hooked).await.expect("insert");
    assert_eq!(t.callback_clients().await.expect("recipients").len(), 2, "its own insert is seen");
    drop(t);
    let deliveries = deliveries_for(&ended(1), &recipients, t0());
    assert_eq!(deliveries.len(), 2);
    enqueue(&store, &deliveries).await;
    let claimed = store.claim_deliveries(t0(), t0() + Duration::seconds(60), 10, 10, &[]).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|d| d.claim.is_some()), "claimed under a token");
    let unclaimed = |d: &Delivery| Delivery { claim: None, ..d.clone() };
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
    assert!(store.record_delivery(&failed).await.expect("record"));
    let mut retry = later[1].clone();
    retry.next_attempt_at = t0() + Duration::hours(1);
    assert!(store.record_delivery(&retry).await.expect("record"));
    assert!(!store.record_delivery(&retry).await.expect("record"), "recorded once: the claim is gone");
    assert!(
        store
            .claim_deliveries(t0() + Duration::seconds(200), t0() + Duration::seconds(260), 10, 10, &[])
            .await
            .expect("claim")
            .is_empty(),
        "a failed one and one not yet due stay put"
    );
    assert_eq!(store.delivery_counts().await.expect("counts"), (1, 1), "pending and failed");
}

pub async fn a_clients_deliveries_are_listed_by_page_and_status_retried_and_pruned(store: Arc<dyn Store>) {
    let (c, quiet) = clients(&store).await;
    let (failed, retry) = recorded(&store, &c).await;
    let page = |status, before, limit| DeliveryPage { status, before, limit };
    let listed = store.client_deliveries(&c.id, &page(None, None, 10)).await.expect("list");
    assert_eq!(listed.len(), 2);
    let first = store.client_deliveries(&c.id, &page(None, None, 1)).await.expect("list");
    let rest = store.client_deliveries(&c.id, &page(None, parse_cursor(&first[0].cursor()), 10)).await.expect("list");
    assert_eq!([first, rest].concat(), listed, "a cursor continues where a page ended");
    let failed_only =
        store.client_deliveries(&c.id, &page(Some(DeliveryStatus::Failed), None, 10)).await.expect("list");
    assert_eq!(failed_only.iter().map(|d| &d.id).collect::<Vec<_>>(), vec![&failed.id], "filtered by status");
    assert_eq!((failed_only[0].attempts, failed_only[0].last_status_code), (1, Some(400)), "the outcome is kept");
    assert!(!store.retry_delivery(&quiet.id, &failed.id, t0()).await.expect("retry"), "only the client's own");
    let still = store.client_deliveries(&c.id, &page(Some(DeliveryStatus::Failed), None, 10)).await.expect("list");
    assert_eq!(still.len(), 1, "another client's retry changed nothing");
    assert!(store.client_deliveries(&quiet.id, &page(None, None, 10)).await.expect("list").is_empty(), "its own");
    assert!(store.retry_delivery(&c.id, &failed.id, t0() + Duration::seconds(300)).await.expect("retry"));
    assert!(!store.retry_delivery(&c.id, &failed.id, t0()).await.expect("retry"), "only a failed one");
    assert!(!store.retry_delivery(&c.id, &retry.id, t0()).await.expect("retry"), "a pending one is not retried");
    let mut delivered = store
        .claim_deliveries(t0() + Duration::seconds(400), t0() + Duration::seconds(460), 10, 10, &[])
        .await
        .expect("claim");
    assert_eq!(delivered.len(), 1, "the retried one");
    delivered[0].status = DeliveryStatus::Delivered;
    assert!(store.record_delivery(&delivered[0]).await.expect("record"));
    let pruned = store.prune_deliveries(t0() + Duration::seconds(301)).await.expect("prune");
    assert_eq!(pruned, 1, "the delivered one (a retry restarts its clock, at 300 s)");
    assert_eq!(store.client_deliveries(&c.id, &page(None, None, 10)).await.expect("list").len(), 1, "the pending one");
}

pub async fn webhook_secrets_rotate_with_an_overlap_and_a_gone_callback_is_dropped(store: Arc<dyn Store>) {
    let (c, quiet) = clients(&store).await;
    let old = c.webhook_secret.clone();
    let until = t0() + Duration::hours(1);
    assert!(store.rotate_webhook_secret(&c.id, "whsec_new", until, t0()).await.expect("rotate"));
    let rotated = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(rotated.webhook_secret.as_deref(), Some("whsec_new"));
    assert_eq!((rotated.previous_webhook_secret, rotated.previous_webhook_secret_until), (old, Some(until)));
    assert_eq!(store.forget_replaced_webhook_secrets(t0()).await.expect("forget"), 0, "not before the overlap ends");
    assert_eq!(store.forget_replaced_webhook_secrets(until).await.expect("forget"), 1);
    let forgotten = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!((forgotten.previous_webhook_secret, forgotten.previous_webhook_secret_until), (None, None));
    assert_eq!(forgotten.webhook_secret.as_deref(), Some("whsec_new"));
    assert!(store.rotate_webhook_secret(&c.id, "whsec_next", t0(), t0()).await.expect("rotate"));
    let at_once = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(at_once.webhook_secrets(t0()), vec!["whsec_next"], "no overlap asked: the old one is dropped");
    assert_eq!(at_once.previous_webhook_secret, None);
    assert!(!store.rotate_webhook_secret(&quiet.id, "whsec_x", until, t0()).await.expect("rotate"), "no webhook URL");
    assert!(!store.rotate_webhook_secret("nobody", "whsec_x", until, t0()).await.expect("rotate"));
    // A URL that answered 410: the client's callback at it goes, and its pending deliveries fail.
    enqueue(&store, &deliveries_for(&ended(1), std::slice::from_ref(&c), t0())).await;
    store.drop_callback(&c.id, "https://a.example/h").await.expect("drop");
    let after = store.client_by_id(&c.id).await.expect("read").expect("client");
    assert_eq!(after.endpoints, vec![Endpoint::backchannel_logout("https://a.example/bc")]);
    assert_eq!(after.endpoint(EndpointKind::Webhook), None);
    let claimable = store.claim_deliveries(t0(), t0() + Duration::seconds(60), 10, 10, &[]).await.expect("claim");
    assert_eq!(claimable.iter().map(|d| d.url.as_str()).collect::<Vec<_>>(), ["https://a.example/bc"]);
    assert_eq!(store.delivery_counts().await.expect("counts"), (1, 1), "the webhook's failed");
}

pub async fn hundreds_of_deliveries_are_written_in_one_transaction(store: Arc<dyn Store>) {
    let (c, _) = clients(&store).await;
    let other =
        NewClient::generate("d".into(), vec![Endpoint::backchannel_logout("https://d.example/bc")], t0()).client;
    let bulk = deliveries_for(&ended(700), &[c.clone(), other], t0() + Duration::days(30));
    assert_eq!(bulk.len(), 700 * 3);
    enqueue(&store, &bulk).await;
    let page = DeliveryPage { status: Some(DeliveryStatus::Pending), before: None, limit: 5000 };
    let listed = store.client_deliveries(&c.id, &page).await.expect("list");
    assert_eq!(listed.len(), 1400, "every row written");
    let mut ours: Vec<&Delivery> = bulk.iter().filter(|d| d.client_id == c.id).collect();
    let mut read: Vec<&Delivery> = listed.iter().collect();
    ours.sort_by(|a, b| a.id.cmp(&b.id));
    read.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(read, ours, "every row as it was written");
    // All of them claimed in one claim, given back in one release, and claimable again.
    let at = t0() + Duration::days(31);
    let claimed = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    assert_eq!(claimed.len(), 2100);
    let ids: Vec<String> = claimed.iter().map(|d| d.id.clone()).collect();
    store.release_deliveries(claimed[0].claim.as_deref().expect("claim"), &ids).await.expect("release");
    let again = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    assert_eq!(again.len(), 2100, "released, every one");
}

pub async fn claims_are_fair_across_endpoints_and_released_only_under_their_claim(store: Arc<dyn Store>) {
    let (c, _) = clients(&store).await;
    let other =
        NewClient::generate("d".into(), vec![Endpoint::backchannel_logout("https://d.example/bc")], t0()).client;
    enqueue(&store, &deliveries_for(&ended(10), &[c, other], t0())).await;
    let at = t0() + Duration::days(1);
    // Every URL's first before any URL's second: a claim of 3 with 3 URLs due takes one each.
    let first = store.claim_deliveries(at, at + Duration::seconds(60), 3, 3, &[]).await.expect("claim");
    let mut urls: Vec<&str> = first.iter().map(|d| d.url.as_str()).collect();
    urls.sort();
    assert_eq!(urls, ["https://a.example/bc", "https://a.example/h", "https://d.example/bc"], "one per URL");
    let busy = ["https://a.example/bc".to_owned(), "https://a.example/h".to_owned()];
    let skipped = store.claim_deliveries(at, at + Duration::seconds(60), 100, 3, &busy).await.expect("claim");
    assert!(!skipped.is_empty() && skipped.iter().all(|d| d.url == "https://d.example/bc"), "busy URLs are skipped");
    // At most `per_endpoint` per URL, so no endpoint crowds out the others.
    let fair = store.claim_deliveries(at, at + Duration::seconds(60), 100, 3, &[]).await.expect("claim");
    let to = |url: &str| fair.iter().filter(|d| d.url == url).count();
    assert_eq!((to("https://a.example/bc"), to("https://d.example/bc")), (3, 3), "three per endpoint");
    assert!(fair.iter().all(|d| d.claim == fair[0].claim), "one claim token per claim");
    // A release under another claim does nothing; under its own, they are claimable again.
    let back: Vec<String> = fair.iter().take(2).map(|d| d.id.clone()).collect();
    store.release_deliveries("someone-else", &back).await.expect("release");
    let all = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    assert!(all.iter().all(|d| !back.contains(&d.id)), "still held by their claim");
    let all_ids: Vec<String> = all.iter().map(|d| d.id.clone()).collect();
    store.release_deliveries(&all[0].claim.clone().expect("claim"), &all_ids).await.expect("release");
    store.release_deliveries(fair[0].claim.as_deref().expect("claim"), &back).await.expect("release");
    let again = store.claim_deliveries(at, at + Duration::seconds(60), 5000, 5000, &[]).await.expect("claim");
    let mut ids: Vec<String> = again.iter().filter(|d| back.contains(&d.id)).map(|d| d.id.clone()).collect();
    ids.sort();
    let mut expected = back.clone();
    expected.sort();
    assert_eq!(ids, expected, "released ones are claimed again");
    assert!(again.iter().all(|d| !fair[2..].iter().any(|f| f.id == d.id)), "the others stay claimed");
}

/// A poll stream's SETs wait: never claimed by the worker, read oldest first at their URL only,
/// settled once (an acknowledged one is not read again), and a failed one retried waits again.
pub async fn waiting_deliveries_are_never_claimed_and_settle_once(store: Arc<dyn Store>) {
    let (c, _) = clients(&store).await;
    let at = |i: i64| t0() + Duration::milliseconds(i);
    let waiting = |url: &str, i: i64| {
        let to = crate::outbox::Destination::Client { client_id: c.id.clone(), url: url.to_owned() };
        let mut d = Delivery::pending(to, crate::outbox::DeliveryKind::SecurityEvent, "e", "{}".into(), at(i));
        d.status = DeliveryStatus::Waiting;
        d
    };
    let mine: Vec<Delivery> = (0..4).map(|i| waiting("poll:mine", 3 - i)).collect();
    enqueue(&store, &mine).await;
    enqueue(&store, &[waiting("poll:other", 0)]).await;
    let claimed = store.claim_deliveries(at(10), at(70), 100, 100, &[]).await.expect("claim");
    assert!(claimed.is_empty(), "the worker never claims what waits to be polled: {claimed:?}");
    let read = store.waiting_deliveries("poll:mine", 3).await.expect("read");
    let ids: Vec<&str> = read.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, [&mine[3].id, &mine[2].id, &mine[1].id], "oldest first, at most the limit, this URL only");
    let acked = [mine[3].id.clone(), mine[2].id.clone(), "msg_unknown".into()];
    let settled = store.settle_waiting("poll:mine", Some(&acked), DeliveryStatus::Delivered, None).await.expect("ack");
    assert_eq!(settled, 2);
    assert_eq!(
        store.settle_waiting("poll:mine", Some(&acked), DeliveryStatus::Delivered, None).await.expect("again"),
        0
    );
    // Another stream's URL settles nothing of this one.
    let other = [mine[1].id.clone()];
    assert_eq!(store.settle_waiting("poll:other", Some(&other), DeliveryStatus::Failed, None).await.expect("x"), 0);
    let failed = store.settle_waiting("poll:mine", Some(&other), DeliveryStatus::Failed, Some("invalid_key: no")).await;
    assert_eq!(failed.expect("err"), 1);
    let left: Vec<String> =
        store.waiting_deliveries("poll:mine", 10).await.expect("read").into_iter().map(|d| d.id).collect();
    assert_eq!(left, [mine[0].id.clone()]);
    assert!(store.retry_delivery(&c.id, &mine[1].id, at(20)).await.expect("retry"));
    let again = store.waiting_deliveries("poll:mine", 10).await.expect("read");
    assert_eq!(again.len(), 2, "a retried poll SET waits again");
    assert!(store.claim_deliveries(at(30), at(90), 100, 100, &[]).await.expect("claim").is_empty());
    // All of a stream's at once (deleted or disabled): dropped.
    let dropped = store.settle_waiting("poll:mine", None, DeliveryStatus::Skipped, Some("stream deleted")).await;
    assert_eq!(dropped.expect("drop"), 2);
    assert_eq!(
        store.waiting_deliveries("poll:other", 10).await.expect("read").len(),
        1,
        "the other stream keeps its own"
    );
}
