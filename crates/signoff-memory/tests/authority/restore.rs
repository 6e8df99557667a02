//! The store restored from a copy under the running authority: the feed's positions go back,
//! and those after the copy's head would be written again with other entries. The authority
//! must move the feed past every position it applied, so that none names two entries, and
//! send the relying services' clients of the old positions back to the whole state.

use crate::World;
use signoff_core::store::FeedStore as _;
use signoff_core::{LogoutScope, Presented};

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
