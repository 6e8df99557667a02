//! Sessions and remember-me series: the filters, the cascades, the compare-and-swaps.

use std::sync::Arc;
use time::Duration;

use crate::secret::SessionId;
use crate::store::{RememberFilter, RememberToken, Session, SessionFilter, Store};

use super::{hash, ids, insert_sessions, live, series, session, sorted, sorted_users, t0, tx, user};

/// Five sessions of `a` a second apart, and one of `b`.
async fn five_and_one(store: &Arc<dyn Store>) -> (Vec<Session>, Session) {
    let a = user(store, "a@example.com").await;
    let b = user(store, "b@example.com").await;
    let s: Vec<Session> = (0..5).map(|i| session(&a.id, t0() + Duration::seconds(i), None)).collect();
    let other = session(&b.id, t0(), None);
    insert_sessions(store, &s.iter().chain([&other]).collect::<Vec<_>>()).await;
    (s, other)
}

pub async fn activity_never_moves_backwards_and_the_most_recent_is_listed_first(store: Arc<dyn Store>) {
    let (s, _) = five_and_one(&store).await;
    store.touch_session(&s[0].id, t0() + Duration::minutes(5)).await.expect("touch");
    store.touch_session(&s[0].id, t0() + Duration::minutes(1)).await.expect("touch");
    let (seen, _) = store.session_by_hash(&s[0].secret_hash).await.expect("read").expect("session");
    assert_eq!(seen.last_active_at, t0() + Duration::minutes(5), "activity never moves backwards");
    let listed = store.user_sessions(&s[0].user_id).await.expect("list");
    assert_eq!(listed.len(), 5, "only this user's");
    assert_eq!(listed[0].id, s[0].id, "most recently active first");
}

pub async fn one_the_cap_and_all_of_end_exactly_what_they_name(store: Arc<dyn Store>) {
    let (s, other) = five_and_one(&store).await;
    let a = s[0].user_id.clone();
    let mut t = tx(&store).await;
    let none = t.end_sessions(SessionFilter::One { user: &a, id: &other.id }).await.expect("end");
    assert!(none.sessions.is_empty(), "another user's session id matches nothing");
    // The cap: the newest `keep` stay, the spared one counting as the newest.
    let capped = t.end_sessions(SessionFilter::OldestBeyond { user: &a, keep: 3, spare: &s[0].id }).await;
    assert_eq!(ids(&capped.expect("cap").sessions), sorted(vec![s[1].id.clone(), s[2].id.clone()]));
    let kept = [s[0].id.clone(), s[3].id.clone()];
    let all = t.end_sessions(SessionFilter::AllOf { user: &a, keep: &kept, keep_series: None }).await.expect("all of");
    assert_eq!(ids(&all.sessions), vec![s[4].id.clone()], "every session but the kept ones");
    t.commit().await.expect("commit");
    assert!(live(&store, &other.id).await, "another user is never touched");
    assert_eq!(ids(&store.user_sessions(&a).await.expect("list")), sorted(kept.to_vec()));
}

pub async fn expired_sessions_are_found_per_owner_and_ended_per_user(store: Arc<dyn Store>) {
    let (s, other) = five_and_one(&store).await;
    let a = s[0].user_id.clone();
    let (now, idle_cutoff) = (t0() + Duration::hours(11), t0());
    let mut owners = store.expired_owners(now, idle_cutoff, 10).await.expect("owners");
    owners.sort();
    assert_eq!(owners, sorted_users(vec![a.clone(), other.user_id.clone()]), "each owner once");
    assert_eq!(store.expired_owners(now, idle_cutoff, 1).await.expect("owners").len(), 1, "at most the limit");
    assert!(store.expired_owners(t0(), t0() - Duration::seconds(1), 10).await.expect("owners").is_empty(), "none yet");
    let mut t = tx(&store).await;
    let expired = t.end_sessions(SessionFilter::Expired { user: &a, now, idle_cutoff }).await.expect("expired");
    assert_eq!(ids(&expired.sessions), sorted(ids(&s)), "every one of this user's, and only those");
    let theirs =
        t.end_sessions(SessionFilter::Expired { user: &other.user_id, now, idle_cutoff }).await.expect("expired");
    assert_eq!(ids(&theirs.sessions), vec![other.id.clone()]);
    t.commit().await.expect("commit");
    assert!(store.expired_owners(now, idle_cutoff, 10).await.expect("owners").is_empty());
    assert!(store.user_sessions(&a).await.expect("list").is_empty());
}

pub async fn ending_a_session_ends_its_series_and_what_was_opened_from_it(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    // Series X backs session sx and was used by a racing tab (sx2); series Y backs sy; k is a
    // session with no series.
    let sx = session(&a.id, t0(), None);
    let x = series(&a.id, &sx.id, t0());
    let sx = Session { series: Some(x.selector.clone()), ..sx };
    let sx2 = session(&a.id, t0(), Some(&x.selector));
    let sy = session(&a.id, t0(), None);
    let y = series(&a.id, &sy.id, t0());
    let sy = Session { series: Some(y.selector.clone()), ..sy };
    let k = session(&a.id, t0(), None);
    insert_sessions(&store, &[&sx, &sx2, &sy, &k]).await;
    let mut t = tx(&store).await;
    t.insert_remember(&x).await.expect("insert");
    t.insert_remember(&y).await.expect("insert");
    t.commit().await.expect("commit");

    // Ending a session that holds a series deletes the series and every session opened from it.
    let mut t = tx(&store).await;
    let ended = t.end_sessions(SessionFilter::One { user: &a.id, id: &sx.id }).await.expect("end");
    assert_eq!(ended.series, 1);
    assert_eq!(ids(&ended.sessions), sorted(vec![sx.id.clone(), sx2.id.clone()]), "the racer's session went along");
    // A lapsed session leaves its series alone.
    let lapsed = t.end_sessions(SessionFilter::Lapsed { user: &a.id, id: &sy.id }).await.expect("lapsed");
    assert_eq!((lapsed.sessions.len(), lapsed.series), (1, 0));
    t.commit().await.expect("commit");
    assert!(store.remember_by_selector(&y.selector).await.expect("read").is_some(), "Y outlives its session");
    assert!(store.remember_by_selector(&x.selector).await.expect("read").is_none());
    assert_eq!(store.user_remember(&a.id).await.expect("list").len(), 1);

    // A session resumed from Y, then Y deleted: the session goes with it and is reported.
    let sy2 = session(&a.id, t0(), Some(&y.selector));
    insert_sessions(&store, &[&sy2]).await;
    let mut t = tx(&store).await;
    let ended = t.delete_remember(RememberFilter::Selector(&y.selector)).await.expect("delete");
    assert_eq!((ids(&ended.sessions), ended.series), (vec![sy2.id.clone()], 1));
    t.commit().await.expect("commit");
    assert!(live(&store, &k.id).await, "a session with no series is untouched");
}

pub async fn all_of_keeps_the_kept_and_named_series_and_an_unbound_session_outlives_its_series(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    // K is a session with no series.
    let k = session(&a.id, t0(), None);
    insert_sessions(&store, &[&k]).await;
    let z_holder = session(&a.id, t0(), None);
    let z = series(&a.id, &z_holder.id, t0());
    let z_holder = Session { series: Some(z.selector.clone()), ..z_holder };
    let w = series(&a.id, &SessionId::generate(), t0() - Duration::days(40));
    let v = series(&a.id, &SessionId::generate(), t0() + Duration::seconds(1));
    // U's own session has lapsed (its row is still there): kept as a series, its session goes.
    let u_lapsed = session(&a.id, t0() - Duration::days(1), None);
    let u = series(&a.id, &u_lapsed.id, t0());
    let u_lapsed = Session { series: Some(u.selector.clone()), ..u_lapsed };
    insert_sessions(&store, &[&z_holder, &u_lapsed]).await;
    let mut t = tx(&store).await;
    for r in [&z, &w, &v] {
        t.insert_remember(r).await.expect("insert");
    }
    t.insert_remember(&u).await.expect("insert");
    let kept = [z_holder.id.clone()];
    let all = t
        .end_sessions(SessionFilter::AllOf { user: &a.id, keep: &kept, keep_series: Some(&u.selector) })
        .await
        .expect("all of");
    assert_eq!(
        (ids(&all.sessions), all.series),
        (sorted(vec![k.id.clone(), u_lapsed.id.clone()]), 2),
        "W and V go, Z (kept) and U (kept as a series) stay"
    );
    t.commit().await.expect("commit");
    assert!(store.remember_by_selector(&u.selector).await.expect("read").is_some(), "U stays");
    let mut t = tx(&store).await;
    t.unbind_series(&z_holder.id).await.expect("unbind");
    let ended = t.delete_remember(RememberFilter::AllOfUser(&a.id)).await.expect("delete");
    assert_eq!((ended.sessions.len(), ended.series), (0, 2), "an unbound session survives its series");
    t.commit().await.expect("commit");
    assert!(live(&store, &z_holder.id).await);
}

pub async fn the_sweep_and_the_cap_pick_the_right_series(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let mut t = tx(&store).await;
    let old = series(&a.id, &SessionId::generate(), t0() - Duration::days(40));
    let newer = series(&a.id, &SessionId::generate(), t0());
    let spared = series(&a.id, &SessionId::generate(), t0() - Duration::days(1));
    for r in [&old, &newer, &spared] {
        t.insert_remember(r).await.expect("insert");
    }
    let swept = t.delete_remember(RememberFilter::Expired { user: &a.id, now: t0() }).await.expect("sweep");
    assert_eq!(swept.series, 1, "only the series past its end");
    let capped = t
        .delete_remember(RememberFilter::OldestBeyond { user: &a.id, keep: 1, spare: Some(&spared.selector) })
        .await
        .expect("cap");
    assert_eq!(capped.series, 1, "keep one: the spared series, though not the newest");
    t.commit().await.expect("commit");
    assert!(store.remember_by_selector(&spared.selector).await.expect("read").is_some());
}

pub async fn remember_compare_and_swap(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let s = session(&a.id, t0(), None);
    let r = series(&a.id, &s.id, t0());
    insert_sessions(&store, &[&s]).await;
    let mut t = tx(&store).await;
    t.insert_remember(&r).await.expect("insert");
    let next = hash();
    let s2 = session(&a.id, t0(), Some(&r.selector));
    assert!(!t.rotate_remember(&r.selector, &hash(), &next, &s2, t0()).await.expect("cas"), "wrong validator");
    assert!(t.rotate_remember(&r.selector, &r.validator_hash, &next, &s2, t0()).await.expect("cas"));
    assert!(!t.rotate_remember(&r.selector, &r.validator_hash, &hash(), &s2, t0()).await.expect("cas"), "once");
    let seen = t.remember_by_selector(&r.selector).await.expect("read").expect("series");
    assert_eq!(
        (seen.validator_hash, seen.previous_hash, seen.session_id.clone()),
        (next, Some(r.validator_hash), s2.id)
    );
    assert!(!t.use_remember_grace(&r.selector, &hash()).await.expect("grace"), "not the predecessor");
    assert!(t.use_remember_grace(&r.selector, &r.validator_hash).await.expect("grace"));
    assert!(!t.use_remember_grace(&r.selector, &r.validator_hash).await.expect("grace"), "the grace is used once");
    assert!(t.rotate_remember(&r.selector, &next, &hash(), &s, t0()).await.expect("cas"));
    let seen = t.remember_by_selector(&r.selector).await.expect("read").expect("series");
    assert!(!seen.grace_used, "a rotation opens a new grace");
    t.commit().await.expect("commit");
}

/// A session's sign-in (the OpenID `sid`) is kept whole: by every read, across a rotation of
/// the session's id and secret, and by its remember-me series and the listing of both.
pub async fn a_sign_in_is_kept_across_rotation_and_by_its_series(store: Arc<dyn Store>) {
    let a = user(&store, "signin@example.com").await;
    let s = session(&a.id, t0(), None);
    let other = session(&a.id, t0(), None);
    assert_ne!(s.signin, other.signin);
    let r = RememberToken { signin: s.signin.clone(), ..series(&a.id, &s.id, t0()) };
    insert_sessions(&store, &[&s, &other]).await;
    let mut t = tx(&store).await;
    t.insert_remember(&r).await.expect("insert");
    let (rotated, secret) = (SessionId::generate(), hash());
    assert!(t.rotate_session(&s.id, &rotated, &secret).await.expect("rotate"));
    let (seen, _) = t.session_by_id(&rotated).await.expect("read").expect("the rotated session");
    assert_eq!((seen.signin.clone(), seen.secret_hash), (s.signin.clone(), secret), "same sign-in, new secret");
    assert_eq!(seen.authenticated_at, s.authenticated_at);
    t.commit().await.expect("commit");
    let (by_hash, _) = store.session_by_hash(&secret).await.expect("read").expect("by its secret");
    assert_eq!(by_hash.signin, s.signin);
    let listed = store.user_sessions(&a.id).await.expect("list");
    let signin_of = |id: &SessionId| listed.iter().find(|x| &x.id == id).map(|x| x.signin.clone());
    assert_eq!((signin_of(&rotated), signin_of(&other.id)), (Some(s.signin.clone()), Some(other.signin.clone())));
    let kept = store.remember_by_selector(&r.selector).await.expect("read").expect("series");
    assert_eq!((kept.signin, kept.session_id), (s.signin.clone(), rotated.clone()), "the series follows the rotation");
    assert_eq!(store.user_remember(&a.id).await.expect("list")[0].signin, s.signin);
}

/// `Tx::end_sessions_and_bump` (one statement on PostgreSQL) ends what `end_sessions` would and
/// bumps the user's token version as `bump_token_version` would, for every filter.
pub async fn ending_and_bumping_at_once_is_the_two_calls(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let b = user(&store, "b@example.com").await;
    // Series X backs sx, and a racing tab opened sx2 from it; s1 and s2 are younger sessions
    // with no series; `other` is b's.
    let sx = session(&a.id, t0(), None);
    let x = series(&a.id, &sx.id, t0());
    let sx = Session { series: Some(x.selector.clone()), ..sx };
    let sx2 = session(&a.id, t0(), Some(&x.selector));
    let s1 = session(&a.id, t0() + Duration::seconds(1), None);
    let s2 = session(&a.id, t0() + Duration::seconds(2), None);
    let other = session(&b.id, t0(), None);
    insert_sessions(&store, &[&sx, &sx2, &s1, &s2, &other]).await;
    let mut t = tx(&store).await;
    t.insert_remember(&x).await.expect("insert");
    t.commit().await.expect("commit");

    let keep = [s1.id.clone()];
    let (sx_both, all) = (
        sorted(vec![sx.id.clone(), sx2.id.clone()]),
        sorted(vec![sx.id.clone(), sx2.id.clone(), s1.id.clone(), s2.id.clone()]),
    );
    // sx and sx2 are past their end (ten hours), s1 and s2 not yet.
    let (now, idle_cutoff) = (t0() + Duration::hours(10) + Duration::milliseconds(500), t0() - Duration::seconds(1));
    let cases: [(SessionFilter, Vec<SessionId>, u64); 7] = [
        (SessionFilter::One { user: &a.id, id: &sx.id }, sx_both.clone(), 1),
        (SessionFilter::One { user: &a.id, id: &other.id }, vec![], 0),
        (SessionFilter::Lapsed { user: &a.id, id: &s1.id }, vec![s1.id.clone()], 0),
        (
            SessionFilter::AllOf { user: &a.id, keep: &keep, keep_series: None },
            sorted(vec![sx.id.clone(), sx2.id.clone(), s2.id.clone()]),
            1,
        ),
        (SessionFilter::AllOf { user: &a.id, keep: &[], keep_series: Some(&x.selector) }, all.clone(), 0),
        (SessionFilter::Expired { user: &a.id, now, idle_cutoff }, sx_both.clone(), 0),
        (SessionFilter::OldestBeyond { user: &a.id, keep: 2, spare: &s2.id }, sx_both.clone(), 1),
    ];
    for (filter, sessions, series) in cases {
        // Each way in a transaction rolled back, from the same state.
        let mut t = tx(&store).await;
        let (one, version) = t.end_sessions_and_bump(filter).await.expect("end and bump");
        drop(t);
        let mut t = tx(&store).await;
        let two = t.end_sessions(filter).await.expect("end");
        let bumped = t.bump_token_version(&a.id).await.expect("bump");
        drop(t);
        assert_eq!((ids(&one.sessions), one.series, version), (sessions, series, 1), "{filter:?}");
        assert_eq!((ids(&two.sessions), two.series, bumped), (ids(&one.sessions), one.series, version), "{filter:?}");
    }

    // Committed: the new version stays, and b is untouched.
    let mut t = tx(&store).await;
    let (ended, version) =
        t.end_sessions_and_bump(SessionFilter::AllOf { user: &a.id, keep: &[], keep_series: None }).await.expect("end");
    t.commit().await.expect("commit");
    assert_eq!((ids(&ended.sessions), ended.series, version), (all, 1, 1));
    let version_of = async |id| store.user_by_id(id).await.expect("read").expect("user").user.token_version;
    assert_eq!((version_of(&a.id).await, version_of(&b.id).await), (1, 0));
    assert!(live(&store, &other.id).await, "another user is never touched");
    // Again: nothing left to end, and the version still moves on.
    let mut t = tx(&store).await;
    let (ended, version) =
        t.end_sessions_and_bump(SessionFilter::AllOf { user: &a.id, keep: &[], keep_series: None }).await.expect("end");
    t.commit().await.expect("commit");
    assert_eq!((ended.sessions.len(), ended.series, version), (0, 0, 2));

    // A user who is not there: an error, as the bump alone gives.
    let ghost = crate::UserId::generate();
    let mut t = tx(&store).await;
    let gone = t.end_sessions_and_bump(SessionFilter::AllOf { user: &ghost, keep: &[], keep_series: None }).await;
    assert!(gone.is_err(), "no user to bump: {gone:?}");
}

/// `Tx::lock_user_and_read_session` (one statement on PostgreSQL) reads what `lock_user` and
/// then `session_by_id` read, for a session of that user: the session with its user; nothing
/// for an unknown id, another user's session, or a user who is not there.
pub async fn locking_and_reading_at_once_is_the_two_calls(store: Arc<dyn Store>) {
    let a = user(&store, "a@example.com").await;
    let b = user(&store, "b@example.com").await;
    let (mine, theirs) = (session(&a.id, t0(), None), session(&b.id, t0(), None));
    insert_sessions(&store, &[&mine, &theirs]).await;
    let (unknown, ghost) = (SessionId::generate(), crate::UserId::generate());
    let cases = [
        (&a.id, &mine.id),
        (&a.id, &theirs.id),
        (&b.id, &mine.id),
        (&a.id, &unknown),
        (&ghost, &theirs.id),
        (&ghost, &unknown),
    ];
    for (user, id) in cases {
        let mut t = tx(&store).await;
        let one = t.lock_user_and_read_session(user, id).await.expect("lock and read");
        drop(t);
        let mut t = tx(&store).await;
        t.lock_user(user).await.expect("lock");
        let two = t.session_by_id(id).await.expect("read").filter(|(s, _)| &s.user_id == user);
        drop(t);
        let expected = (user == &a.id && id == &mine.id).then(|| mine.clone());
        assert_eq!(one.as_ref().map(|(s, _)| s.clone()), expected, "user {user:?}, session {id:?}");
        assert_eq!(one, two, "user {user:?}, session {id:?}");
        if let Some((_, u)) = one {
            assert_eq!(u, a, "the session's user");
        }
    }
}
