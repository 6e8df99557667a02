//! Time: idle and absolute ends, the sweep, and the remember-me race grace, on a manual clock.

use crate::World;
use signoff_core::Resume;
use time::Duration;

#[tokio::test]
async fn a_session_idles_out_and_the_sweep_ends_what_expired() {
    let w = World::new().await;
    w.account("me@example.com").await;
    let busy = w.sign_in("me@example.com", false).await;
    let idle = w.sign_in("me@example.com", false).await;
    // Used just inside the idle timeout, a session lives on from then.
    w.clock.advance(Duration::minutes(29));
    assert!(w.authority.authenticate(&busy.ctx.secret).await.expect("lookup").is_some());
    w.clock.advance(Duration::minutes(2));
    assert!(w.lookup(&busy.ctx.secret).await.is_some(), "used a minute ago");
    assert_eq!(w.authority.sweep_expired().await.expect("sweep"), 1, "the idle one, and only it");
    assert!(w.lookup(&idle.ctx.secret).await.is_none());
    // However busy, a session ends at its absolute end.
    for _ in 0..21 {
        w.clock.advance(Duration::minutes(29));
        let _ = w.authority.authenticate(&busy.ctx.secret).await.expect("lookup");
    }
    assert!(w.lookup(&busy.ctx.secret).await.is_none(), "ten hours after sign-in");
}

#[tokio::test]
async fn the_remember_me_grace_admits_one_racer_and_a_copy_after_it_is_theft() {
    let w = World::new().await;
    w.account("me@example.com").await;
    let first = w.sign_in("me@example.com", true).await;
    let cookie = first.remember.expect("remembered");
    let Resume::Resumed(next) = w.authority.resume(&cookie, &w.client).await.expect("resume") else {
        panic!("the current validator resumes");
    };
    w.clock.advance(Duration::seconds(2));
    let racer = w.authority.resume(&cookie, &w.client).await.expect("resume");
    assert!(matches!(racer, Resume::Resumed(_)), "a tab racing the rotation, inside the grace");
    assert!(matches!(w.authority.resume(&cookie, &w.client).await.expect("resume"), Resume::LostRace), "once");
    w.clock.advance(Duration::seconds(5));
    assert!(matches!(w.authority.resume(&cookie, &w.client).await.expect("resume"), Resume::Theft));
    // Theft ends the series and every session opened from it.
    assert!(w.lookup(&next.ctx.secret).await.is_none());
    let rotated = next.remember.expect("rotated");
    assert!(matches!(w.authority.resume(&rotated, &w.client).await.expect("resume"), Resume::Invalid));
}
