//! The store restored from a copy under the running authority: the feed's positions go back,
//! and those after the copy's head would be written again with other entries. The authority
//! must move the feed past every position it applied, so that none names two entries, and
//! send the relying services' clients of the old positions back to the whole state.

use crate::World;
use signoff_core::feed::FeedEntry;
use signoff_core::store::{Announce, FeedStore as _, Store as _};
use signoff_core::{Clock as _, LogoutScope, Presented};

/// Signs in and out three times: three positions the copy will not have.
async fn run_past_the_copy(w: &World) -> i64 {
    for _ in 0..3 {
        let s = w.sign_in("me@example.com", false).await;
        w.authority
            .logout(std::slice::from_ref(&s.ctx.session), LogoutScope::Local, &Presented::default(), &w.client)
            .await
            .expect("logout");
    }
    let page = w.authority.feed_page(None).await.expect("the feed");
    assert_eq!(page.head, 3, "three positions applied");
    page.head
}

#[tokio::test]
async fn a_revocation_written_at_a_position_already_applied_moves_the_feed_past_the_old_ones() {
    let w = World::new().await;
    w.account("me@example.com").await;
    let kept = w.sign_in("me@example.com", false).await;
    let copy = w.store.copy();
    let old = run_past_the_copy(&w).await;
    w.store.restore(&copy).await;
    assert_eq!(w.store.revocation_head().await.expect("head"), 0, "the copy's feed");

    // Written at position 1, which this process applied (another logout) before the restore.
    w.authority
        .logout(std::slice::from_ref(&kept.ctx.session), LogoutScope::Local, &Presented::default(), &w.client)
        .await
        .expect("logout after the restore");
    assert!(w.lookup(&kept.ctx.secret).await.is_none(), "the session is over");
    let head = w.store.revocation_head().await.expect("head");
    assert!(head > old + (1 << 31), "the feed moved past every old position: {head}");

    // A client of the old feed holds position 3: it starts over, and the whole state it is
    // given has the logout written after the restore.
    let page = w.authority.feed_page(Some(old)).await.expect("the feed");
    assert!(page.reset, "a client of the old positions starts over");
    assert_eq!(page.head, head);
    let sid = kept.ctx.session.id.to_string();
    assert!(
        page.events.iter().any(|(_, e)| e.to_json(0)["sid"] == sid.as_str()),
        "the whole state has the logout: {:?}",
        page.events
    );

    // The next revocation follows the new head, and a client there is told of it alone.
    let next = w.sign_in("me@example.com", false).await;
    w.authority
        .logout(std::slice::from_ref(&next.ctx.session), LogoutScope::Local, &Presented::default(), &w.client)
        .await
        .expect("logout");
    let page = w.authority.feed_page(Some(head)).await.expect("the feed");
    assert!(!page.reset);
    assert_eq!(page.events.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), vec![head + 1]);
}

#[tokio::test]
async fn a_read_that_finds_the_feed_behind_moves_it_past_the_old_positions() {
    let w = World::new().await;
    w.account("me@example.com").await;
    let copy = w.store.copy();
    let old = run_past_the_copy(&w).await;
    w.store.restore(&copy).await;
    let applied = w.authority.catch_up().await.expect("read");
    assert!(applied > old + (1 << 31), "moved on past the old positions: {applied}");
    assert_eq!(w.store.revocation_head().await.expect("head"), applied);
    let page = w.authority.feed_page(Some(old)).await.expect("the feed");
    assert!(page.reset, "a client of the old positions starts over");
    // Found once: reading again changes nothing.
    assert_eq!(w.authority.catch_up().await.expect("read"), applied);
}

#[tokio::test]
async fn a_batch_written_across_the_old_head_is_found_too() {
    let w = World::new().await;
    w.account("me@example.com").await;
    let mut kept = Vec::new();
    for _ in 0..5 {
        kept.push(w.sign_in("me@example.com", false).await);
    }
    let copy = w.store.copy();
    let old = run_past_the_copy(&w).await;
    w.store.restore(&copy).await;
    // Every session of the user ended in one batch: positions 1 to 5 and more, past the old head.
    w.authority
        .logout(std::slice::from_ref(&kept[0].ctx.session), LogoutScope::Global, &Presented::default(), &w.client)
        .await
        .expect("global logout after the restore");
    let head = w.store.revocation_head().await.expect("head");
    assert!(head > old + (1 << 31), "the feed moved past every old position: {head}");
    let page = w.authority.feed_page(Some(old)).await.expect("the feed");
    assert!(page.reset, "a client of the old positions starts over");
    for s in &kept {
        assert!(w.lookup(&s.ctx.secret).await.is_none(), "every session is over");
        let sid = s.ctx.session.id.to_string();
        assert!(page.events.iter().any(|(_, e)| e.to_json(0)["sid"] == sid.as_str()), "{sid} in the whole state");
    }
}

#[tokio::test]
async fn entries_written_again_past_this_process_are_found_by_the_one_at_its_position() {
    let w = World::new().await;
    w.account("me@example.com").await;
    let copy = w.store.copy();
    let old = run_past_the_copy(&w).await;
    assert_eq!(w.authority.catch_up().await.expect("read"), old, "the entry at its position read");
    w.store.restore(&copy).await;
    // Another process writes five entries at positions 1 to 5: the head is past this process's
    // position again, and the entries after it look like any others.
    let exp = w.clock.now().unix_timestamp() + 3600;
    let token =
        |jti: &str| FeedEntry::Token { issuer: "https://auth.example".into(), jti: jti.into(), exp, user_id: None };
    let written: Vec<FeedEntry> = ["v", "w", "x", "y", "z"].into_iter().map(token).collect();
    let mut tx = w.store.begin().await.expect("begin");
    assert_eq!(tx.record_revocations(&written, w.clock.now(), Announce::Now).await.expect("record"), 5);
    tx.commit().await.expect("commit");

    let applied = w.authority.catch_up().await.expect("read");
    assert!(applied > old + (1 << 31), "moved on past the old positions: {applied}");
    let page = w.authority.feed_page(Some(old)).await.expect("the feed");
    assert!(page.reset, "a client of the old positions starts over");
    for jti in ["v", "w", "x", "y", "z"] {
        assert!(
            page.events.iter().any(|(_, e)| e.to_json(0)["jti"] == jti),
            "{jti}, written at a reused position, is in the whole state: {:?}",
            page.events
        );
    }
}

#[tokio::test]
async fn another_process_reading_the_moved_feed_tells_its_clients_what_was_written_again() {
    let w = World::new().await;
    let other = w.beside().await;
    w.account("me@example.com").await;
    let kept = w.sign_in("me@example.com", false).await;
    let copy = w.store.copy();
    let old = run_past_the_copy(&w).await;
    assert_eq!(other.catch_up().await.expect("read"), old, "the other process read the old feed");
    w.store.restore(&copy).await;
    // Written at position 1, which both processes had read; this one moves the feed on.
    w.authority
        .logout(std::slice::from_ref(&kept.ctx.session), LogoutScope::Local, &Presented::default(), &w.client)
        .await
        .expect("logout after the restore");
    let head = w.store.revocation_head().await.expect("head");
    assert!(head > old + (1 << 31));

    // The other process finds the head moved past it, and its clients' whole state has the
    // logout written at a position it had read before.
    assert_eq!(other.catch_up().await.expect("read"), head);
    let page = other.feed_page(Some(old)).await.expect("the feed");
    assert!(page.reset, "a client of the old positions starts over");
    let sid = kept.ctx.session.id.to_string();
    assert!(
        page.events.iter().any(|(_, e)| e.to_json(0)["sid"] == sid.as_str()),
        "the logout written again at position 1 is in the whole state: {:?}",
        page.events
    );
}
