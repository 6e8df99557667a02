//! Security triggers, held to their rows in `policy.rs` (`Trigger::consequences`).

use crate::World;
use signoff_core::Trigger;
use signoff_core::policy::Ends;

#[tokio::test]
async fn every_trigger_does_what_its_consequences_say() {
    for trigger in [Trigger::PasswordChanged, Trigger::SecurityReport, Trigger::AdminRevoke] {
        let w = World::new().await;
        let c = trigger.consequences();
        w.account("me@example.com").await;
        let here = w.sign_in("me@example.com", false).await;
        let there = w.sign_in("me@example.com", true).await;
        let version = w.token_version("me@example.com").await;
        let kept = match trigger {
            Trigger::PasswordChanged => Some(
                w.authority
                    .change_password(&here.ctx, crate::PASSWORD, "another long passphrase entirely", &w.client)
                    .await
                    .expect("change"),
            ),
            Trigger::SecurityReport => {
                w.authority.report_concern(&here.ctx, "not me", &w.client).await.expect("report");
                None
            }
            _ => {
                w.authority.admin_revoke(&here.ctx.user.id, "test", &w.client).await.expect("revoke");
                None
            }
        };
        let what = format!("{trigger:?}");
        assert!(w.lookup(&there.ctx.secret).await.is_none(), "{what}: the other session ends");
        assert!(w.lookup(&here.ctx.secret).await.is_none(), "{what}: this secret is dead (ended or rotated)");
        match (c.ends, kept) {
            (Ends::Others, Some(rotated)) => {
                let live = w.lookup(&rotated.secret).await.expect("the current session lives on");
                assert_eq!(c.rotate_current, live.session.id != here.ctx.session.id, "{what}: rotated");
            }
            (Ends::All, None) => {}
            (ends, kept) => panic!("{what}: ends {ends:?} but kept {}", kept.is_some()),
        }
        let resumed = w.authority.resume(there.remember.as_ref().expect("remembered"), &w.client).await;
        let resumed = matches!(resumed.expect("resume"), signoff_core::Resume::Resumed(_));
        assert_eq!(resumed, !c.revoke_all_tokens, "{what}: remember-me series");
        assert_eq!(w.token_version("me@example.com").await > version, c.bump_token_version, "{what}: version");
    }
}

/// The browser's sign-in (OpenID `sid`) is what its apps' sessions are keyed on: a password
/// change rotates the session's id and secret but keeps the sign-in, a remember-me resume
/// carries it on (with the time the password was entered), and a new password sign-in makes a
/// new one.
#[tokio::test]
async fn a_sign_in_outlives_rotation_and_resume_and_a_new_password_sign_in_starts_another() {
    let w = World::new().await;
    w.account("sid@example.com").await;
    let here = w.sign_in("sid@example.com", true).await;
    let signin = here.ctx.session.signin.clone();
    let rotated = w
        .authority
        .change_password(&here.ctx, crate::PASSWORD, "another long passphrase entirely", &w.client)
        .await
        .expect("change");
    assert_ne!(rotated.session.id, here.ctx.session.id, "rotated");
    let live = w.lookup(&rotated.secret).await.expect("lives on");
    assert_eq!(live.session.signin, signin, "the password change keeps the sign-in");
    assert_eq!(live.session.authenticated_at, here.ctx.session.authenticated_at);

    // (The password change ended every other series: another account for the resume.)
    w.account("resume@example.com").await;
    let other = w.sign_in("resume@example.com", true).await;
    let again = w.sign_in("resume@example.com", false).await;
    assert_ne!(other.ctx.session.signin, again.ctx.session.signin, "another password sign-in is another sign-in");
    // The password entered again in a browser already signed in (to the same account) carries
    // its sign-in on, with a fresh authentication time; another account starts its own.
    let previous = (Some(&again.ctx.secret), None);
    let reentered =
        w.authority.login("resume@example.com", crate::PASSWORD, false, previous, &w.client).await.expect("again");
    assert_ne!(reentered.ctx.session.id, again.ctx.session.id);
    assert_eq!(reentered.ctx.session.signin, again.ctx.session.signin);
    assert!(reentered.ctx.session.authenticated_at >= again.ctx.session.authenticated_at);
    assert!(w.lookup(&again.ctx.secret).await.is_none(), "the session it replaced is over");
    w.account("third@example.com").await;
    let previous = (Some(&reentered.ctx.secret), None);
    let switched =
        w.authority.login("third@example.com", crate::PASSWORD, false, previous, &w.client).await.expect("switch");
    assert_ne!(switched.ctx.session.signin, reentered.ctx.session.signin, "another account, another sign-in");
    let signoff_core::Resume::Resumed(resumed) =
        w.authority.resume(other.remember.as_ref().expect("remembered"), &w.client).await.expect("resume")
    else {
        panic!("the series resumes")
    };
    assert_ne!(resumed.ctx.session.id, other.ctx.session.id);
    assert_eq!(resumed.ctx.session.signin, other.ctx.session.signin, "a resume carries the sign-in on");
    assert_eq!(resumed.ctx.session.authenticated_at, other.ctx.session.authenticated_at, "no password was entered");
}
