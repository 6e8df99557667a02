//! Logout scopes, held to their rows in `policy.rs` (`LogoutScope::rule`).

use crate::World;
use signoff_core::{LogoutScope, Presented};

#[tokio::test]
async fn every_scope_ends_what_its_rule_says_and_no_more() {
    for scope in LogoutScope::ALL {
        let w = World::new().await;
        let rule = scope.rule();
        w.account("me@example.com").await;
        w.account("else@example.com").await;
        let here = w.sign_in("me@example.com", true).await;
        let there = w.sign_in("me@example.com", true).await;
        // Presented besides the session, and owned by no session the scope reaches on its own.
        let presented =
            w.authority.password_grant("else@example.com", crate::PASSWORD, &w.client).await.expect("grant");
        let version = w.token_version("me@example.com").await;

        let credentials = Presented { refresh_token: Some(&presented.refresh_token), ..Presented::default() };
        let done = w
            .authority
            .logout(std::slice::from_ref(&here.ctx.session), scope, &credentials, &w.client)
            .await
            .expect("logout");

        let what = scope.as_str();
        assert_eq!(done.cleared, rule.ends_this, "{what}: cleared");
        assert!(!done.no_session, "{what}: it had a session to speak for");
        assert_eq!(w.lookup(&here.ctx.secret).await.is_none(), rule.ends_this, "{what}: this session");
        assert_eq!(w.lookup(&there.ctx.secret).await.is_none(), rule.ends_others, "{what}: the other session");
        let there_remembered = w.authority.resume(there.remember.as_ref().expect("remembered"), &w.client).await;
        let resumed = matches!(there_remembered.expect("resume"), signoff_core::Resume::Resumed(_));
        assert_eq!(resumed, !rule.ends_others, "{what}: the other device's remember-me series");
        assert_eq!(w.token_version("me@example.com").await > version, rule.bump_token_version, "{what}: version");
        let refreshed = w.authority.refresh_grant(&presented.refresh_token, None, &w.client).await;
        assert_eq!(refreshed.is_err(), rule.kills_presented, "{what}: the presented refresh token");
        // The presented refresh token's session ends with it.
        let expected = [rule.ends_this, rule.ends_others, rule.kills_presented].into_iter().filter(|e| *e).count();
        assert_eq!(done.ended, expected as u64, "{what}: sessions ended");
    }
}

#[tokio::test]
async fn without_a_session_a_logout_kills_what_was_presented_whatever_the_scope() {
    for scope in LogoutScope::ALL {
        let w = World::new().await;
        w.account("me@example.com").await;
        let other = w.sign_in("me@example.com", false).await;
        let grant = w.authority.password_grant("me@example.com", crate::PASSWORD, &w.client).await.expect("grant");
        let credentials = Presented { refresh_token: Some(&grant.refresh_token), ..Presented::default() };
        let done = w.authority.logout(&[], scope, &credentials, &w.client).await.expect("logout");
        let what = scope.as_str();
        assert!(done.cleared, "{what}: the browser is signed out");
        assert_eq!(done.no_session, scope.rule().ends_others, "{what}: says nothing else ended");
        assert!(
            w.authority.refresh_grant(&grant.refresh_token, None, &w.client).await.is_err(),
            "{what}: presented dies"
        );
        assert!(w.lookup(&other.ctx.secret).await.is_some(), "{what}: nobody spoke for the other device");
    }
}
