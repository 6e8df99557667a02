//! Authorization codes and the links from a browser's sign-in to the apps it signed in to.

use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::clients::{Endpoint, NewClient};
use crate::secret::{SecretHash, random_bytes};
use crate::signals::SignalStream;
use crate::store::{AuthorizationCode, CodeIssue, CodeUse, Session, Store};

use super::{insert_sessions, session, t0, tx, user};

/// A code for `client` issued to session `s`, expiring at `expires_at`.
fn code_for(client: &str, s: &Session, expires_at: OffsetDateTime) -> AuthorizationCode {
    AuthorizationCode {
        code_hash: SecretHash(random_bytes()),
        client_id: client.to_owned(),
        redirect_uri: "https://rp.example/cb".into(),
        user_id: s.user_id.clone(),
        session_id: s.id.clone(),
        signin: s.signin.clone(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-0S6_WzA2Mj".into()),
        auth_time: t0() - Duration::minutes(3),
        created_at: t0(),
        expires_at,
    }
}

/// A code is spent once within its life (then every use says what its first issued), an
/// expired or unknown one is unknown, an uncommitted use spends nothing; links are kept once
/// per sign-in and client, read per sign-in, and ended once no session or series carries the
/// sign-in; codes and links go with their client,
/// and spent or not, codes go once expired.
pub async fn codes_are_spent_once_and_sign_ins_link_their_apps(store: Arc<dyn Store>) {
    let a = user(&store, "code@example.com").await;
    let s = session(&a.id, t0(), None);
    insert_sessions(&store, &[&s]).await;
    let redirect = vec![Endpoint::new(crate::clients::EndpointKind::Redirect, "https://rp.example/cb")];
    let (rp, other) = (
        NewClient::generate("rp".into(), redirect.clone(), t0()).client,
        NewClient::generate("other".into(), redirect, t0() + Duration::seconds(1)).client,
    );
    let code = |expires_at| code_for(&rp.id, &s, expires_at);
    let (live, expired, lone) = (code(t0() + Duration::seconds(60)), code(t0()), code(t0() + Duration::seconds(60)));
    let lone = AuthorizationCode { nonce: None, ..lone };
    let mut t = tx(&store).await;
    assert!(!t.hold_client(&rp.id).await.expect("hold"), "no such client yet");
    t.insert_client(&rp).await.expect("client");
    t.insert_client(&other).await.expect("client");
    assert!(t.hold_client(&rp.id).await.expect("hold"), "a client held in the transaction");
    for c in [&live, &expired, &lone] {
        t.insert_code(c).await.expect("insert");
    }
    t.commit().await.expect("commit");
    assert_eq!(store.code_user(&live.code_hash).await.expect("read"), Some(a.id.clone()));
    assert_eq!(store.code_user(&SecretHash(random_bytes())).await.expect("read"), None);

    let mut t = tx(&store).await;
    assert_eq!(t.use_code(&live.code_hash, t0()).await.expect("use"), CodeUse::First(live.clone()), "kept whole");
    drop(t);
    let mut t = tx(&store).await;
    assert_eq!(
        t.use_code(&live.code_hash, t0()).await.expect("use"),
        CodeUse::First(live.clone()),
        "a use that did not commit spent nothing"
    );
    let again = CodeUse::Again { user_id: a.id.clone(), issued: None };
    assert_eq!(t.use_code(&live.code_hash, t0()).await.expect("use"), again, "spent");
    let issue = CodeIssue { family: Some("fam".into()), access_jti: "jti-1".into(), access_exp: 1_800_000_900 };
    t.record_code_issue(&live.code_hash, &issue).await.expect("record");
    t.commit().await.expect("commit");
    let mut t = tx(&store).await;
    let again = CodeUse::Again { user_id: a.id.clone(), issued: Some(issue) };
    assert_eq!(t.use_code(&live.code_hash, t0() + Duration::hours(1)).await.expect("use"), again, "even expired");
    assert_eq!(t.use_code(&expired.code_hash, t0()).await.expect("use"), CodeUse::Unknown, "expired unspent");
    assert_eq!(t.use_code(&SecretHash(random_bytes()), t0()).await.expect("use"), CodeUse::Unknown);
    assert_eq!(t.use_code(&lone.code_hash, t0()).await.expect("use"), CodeUse::First(lone.clone()), "no nonce");

    t.link_signin(&s.signin, &rp.id, &a.id, t0()).await.expect("link");
    t.link_signin(&s.signin, &other.id, &a.id, t0() + Duration::seconds(1)).await.expect("link");
    t.link_signin(&s.signin, &rp.id, &a.id, t0() + Duration::seconds(2)).await.expect("again, kept once");
    assert_eq!(t.signin_clients(&s.signin).await.expect("read"), vec![rp.id.clone(), other.id.clone()]);
    t.commit().await.expect("commit");
    assert_eq!(store.signin_clients(&s.signin).await.expect("read"), vec![rp.id.clone(), other.id.clone()]);
    let elsewhere = session(&a.id, t0(), None);
    assert!(store.signin_clients(&elsewhere.signin).await.expect("read").is_empty(), "per sign-in");

    // A sign-in a session carries keeps its links; one its series carries too; once neither
    // does (in this very transaction), its links end and are named: per user.
    let b = user(&store, "other@example.com").await;
    let orphan = session(&b.id, t0(), None).signin;
    let mut t = tx(&store).await;
    t.link_signin(&orphan, &rp.id, &b.id, t0()).await.expect("link");
    assert!(t.end_signins(std::slice::from_ref(&a.id)).await.expect("end").is_empty(), "the session carries it");
    let r = crate::store::RememberToken { signin: s.signin.clone(), ..super::series(&a.id, &s.id, t0()) };
    t.insert_remember(&r).await.expect("series");
    // The session expires; its series (remember me) outlives it and carries the sign-in on.
    let (now, idle_cutoff) = (t0() + Duration::hours(11), t0());
    t.end_sessions(crate::store::SessionFilter::Expired { user: &a.id, now, idle_cutoff }).await.expect("end");
    assert!(t.session_by_id(&s.id).await.expect("read").is_none(), "the session ended");
    assert!(t.end_signins(std::slice::from_ref(&a.id)).await.expect("end").is_empty(), "the series carries it");
    t.delete_remember(crate::store::RememberFilter::Selector(&r.selector)).await.expect("drop");
    let mut ended = t.end_signins(std::slice::from_ref(&a.id)).await.expect("end");
    ended.sort_by(|x, y| x.2.cmp(&y.2));
    let mut expected =
        vec![(s.signin.clone(), a.id.clone(), rp.id.clone()), (s.signin.clone(), a.id.clone(), other.id.clone())];
    expected.sort_by(|x, y| x.2.cmp(&y.2));
    assert_eq!(ended, expected);
    assert!(t.signin_clients(&s.signin).await.expect("read").is_empty());
    assert!(t.end_signins(std::slice::from_ref(&a.id)).await.expect("end").is_empty(), "ended once");
    assert!(t.end_signins(&[]).await.expect("end").is_empty());
    assert_eq!(
        t.end_signins(std::slice::from_ref(&b.id)).await.expect("end"),
        vec![(orphan, b.id.clone(), rp.id.clone())]
    );
    // Gone with their client: a link and a code.
    let s2 = session(&a.id, t0(), None);
    t.insert_session(&s2).await.expect("session");
    let pending = AuthorizationCode {
        session_id: s2.id.clone(),
        signin: s2.signin.clone(),
        ..code(t0() + Duration::seconds(60))
    };
    t.insert_code(&pending).await.expect("insert");
    t.link_signin(&s2.signin, &rp.id, &a.id, t0()).await.expect("link");
    assert!(t.delete_client(&rp.id).await.expect("delete").is_some());
    assert!(t.signin_clients(&s2.signin).await.expect("read").is_empty(), "the link went with the client");
    assert_eq!(t.use_code(&pending.code_hash, t0()).await.expect("use"), CodeUse::Unknown, "the code too");
    assert!(!t.hold_client(&rp.id).await.expect("hold"), "a deleted client is not held");
    t.commit().await.expect("commit");
}

/// Codes expired before the cut are deleted, spent or not; the others stay.
pub async fn expired_codes_are_pruned(store: Arc<dyn Store>) {
    let a = user(&store, "prune@example.com").await;
    let s = session(&a.id, t0(), None);
    insert_sessions(&store, &[&s]).await;
    let rp = NewClient::generate("rp".into(), Vec::new(), t0()).client;
    let code = |expires_at| AuthorizationCode { nonce: None, ..code_for(&rp.id, &s, expires_at) };
    let (old, spent, fresh) = (code(t0()), code(t0() + Duration::seconds(1)), code(t0() + Duration::minutes(5)));
    let mut t = tx(&store).await;
    t.insert_client(&rp).await.expect("client");
    for c in [&old, &spent, &fresh] {
        t.insert_code(c).await.expect("insert");
    }
    assert!(matches!(t.use_code(&spent.code_hash, t0()).await.expect("use"), CodeUse::First(_)));
    assert_eq!(t.prune_codes(t0() + Duration::seconds(2)).await.expect("prune"), 2);
    assert!(matches!(t.use_code(&fresh.code_hash, t0()).await.expect("use"), CodeUse::First(_)));
    assert_eq!(t.use_code(&spent.code_hash, t0()).await.expect("use"), CodeUse::Unknown, "pruned");
    t.commit().await.expect("commit");
}

/// What a batch's commit reads in one call ([`Tx::end_signins_and_read_recipients`]) is what
/// the three reads it stands for give, one after the other in a transaction of their own: the
/// ended links of the users named, the callback clients when asked for or when a link ended,
/// the live streams when asked for; nothing else.
///
/// [`Tx::end_signins_and_read_recipients`]: crate::store::Tx::end_signins_and_read_recipients
pub async fn a_batch_reads_its_recipients_as_the_three_calls_would(store: Arc<dyn Store>) {
    use crate::clients::EndpointKind;
    use crate::signals::{DeliveryMethod, StreamStatus};
    use crate::store::Recipients;
    let a = user(&store, "carried@example.com").await;
    let b = user(&store, "orphan@example.com").await;
    let s = session(&a.id, t0(), None);
    insert_sessions(&store, &[&s]).await;
    let client = |name: &str, kind, url: &str, at| {
        NewClient::generate(name.into(), vec![Endpoint::new(kind, url)], t0() + Duration::seconds(at)).client
    };
    let rp = client("rp", EndpointKind::Redirect, "https://rp.example/cb", 0);
    // A client with endpoints of three kinds (its rows must come out together), and two made at
    // the same instant (told apart by id).
    let endpoints = vec![
        Endpoint::new(EndpointKind::Webhook, "https://logout.example/hook"),
        Endpoint::new(EndpointKind::BackchannelLogout, "https://logout.example/bc"),
        Endpoint::new(EndpointKind::Redirect, "https://logout.example/cb"),
    ];
    let logout = NewClient::generate("logout".into(), endpoints, t0() + Duration::seconds(1)).client;
    let hook = client("hook", EndpointKind::Webhook, "https://hook.example/in", 2);
    let twin = client("twin", EndpointKind::BackchannelLogout, "https://twin.example/bc", 2);
    let live = super::signals::stream(&logout.id, t0(), DeliveryMethod::Push);
    let off = SignalStream {
        status: StreamStatus::Disabled,
        ..super::signals::stream(&logout.id, t0() + Duration::seconds(1), DeliveryMethod::Poll)
    };
    let polled = SignalStream {
        status: StreamStatus::Paused,
        reason: Some("maintenance".into()),
        ..super::signals::stream(&hook.id, t0() + Duration::seconds(2), DeliveryMethod::Poll)
    };
    let orphan = session(&b.id, t0(), None).signin;
    let mut t = tx(&store).await;
    for c in [&rp, &logout, &hook, &twin] {
        t.insert_client(c).await.expect("client");
    }
    for st in [&live, &off, &polled] {
        t.insert_signal_stream(st).await.expect("stream");
    }
    t.link_signin(&s.signin, &rp.id, &a.id, t0()).await.expect("link");
    t.link_signin(&s.signin, &logout.id, &a.id, t0()).await.expect("link");
    t.link_signin(&orphan, &rp.id, &b.id, t0()).await.expect("link");
    t.link_signin(&orphan, &logout.id, &b.id, t0()).await.expect("link");
    t.commit().await.expect("commit");

    let sorted = |mut r: Recipients| {
        r.signins_ended.sort_by(|x, y| x.2.cmp(&y.2));
        r
    };
    let ids = |r: &Recipients| {
        let clients: Vec<String> = r.clients.iter().map(|c| c.id.clone()).collect();
        let streams: Vec<String> = r.streams.iter().map(|s| s.id.clone()).collect();
        (r.signins_ended.len(), clients, streams)
    };
    let (a_id, b_id, both) = (vec![a.id.clone()], vec![b.id.clone()], vec![a.id.clone(), b.id.clone()]);
    let mut same_instant = vec![hook.clone(), twin.clone()];
    same_instant.sort_by(|x, y| x.id.cmp(&y.id));
    let mut read_back = vec![logout.clone()];
    read_back.extend(same_instant);
    for c in &mut read_back {
        c.endpoints.sort();
    }
    let callbacks: Vec<String> = read_back.iter().map(|c| c.id.clone()).collect();
    let streams = vec![live.id.clone(), polled.id.clone()];
    /// Which users, whether clients and streams are asked for; what is read (links ended, the
    /// clients' ids, the streams' ids).
    type Case<'a> = (&'a [crate::UserId], bool, bool, (usize, Vec<String>, Vec<String>));
    let cases: [Case; 6] = [
        (&[], false, false, (0, vec![], vec![])),
        (&[], true, false, (0, callbacks.clone(), vec![])),
        (&[], false, true, (0, vec![], streams.clone())),
        (&a_id, false, false, (0, vec![], vec![])),
        (&b_id, false, false, (2, callbacks.clone(), vec![])),
        (&both, true, true, (2, callbacks.clone(), streams.clone())),
    ];
    for (users, clients, live_streams, expected) in cases {
        let case = format!("users {}, clients {clients}, streams {live_streams}", users.len());
        let mut t = tx(&store).await;
        let one = sorted(t.end_signins_and_read_recipients(users, clients, live_streams).await.expect("one read"));
        drop(t);
        let mut t = tx(&store).await;
        let signins_ended = if users.is_empty() { Vec::new() } else { t.end_signins(users).await.expect("end") };
        let three = sorted(Recipients {
            clients: if clients || !signins_ended.is_empty() {
                t.callback_clients().await.expect("clients")
            } else {
                Vec::new()
            },
            streams: if live_streams { t.live_signal_streams().await.expect("streams") } else { Vec::new() },
            signins_ended,
        });
        drop(t);
        assert_eq!(one, three, "{case}: as the three reads");
        assert_eq!(ids(&one), expected, "{case}");
    }
    // The links of `b`'s sign-in, ended in full: the client with callbacks among them.
    let mut t = tx(&store).await;
    let one = sorted(t.end_signins_and_read_recipients(&b_id, false, true).await.expect("read"));
    assert_eq!(
        one.signins_ended,
        sorted(Recipients {
            signins_ended: vec![
                (orphan.clone(), b.id.clone(), rp.id.clone()),
                (orphan.clone(), b.id.clone(), logout.id.clone())
            ],
            ..Recipients::default()
        })
        .signins_ended
    );
    assert_eq!(one.clients, read_back, "every field, endpoints included, oldest first");
    assert_eq!(one.streams, vec![live.clone(), polled.clone()], "every field, oldest first");
    assert!(t.end_signins(&b_id).await.expect("end").is_empty(), "ended in the transaction");
}
