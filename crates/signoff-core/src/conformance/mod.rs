//! What every [`Store`] must do, as one suite each backend runs (the tower-sessions way): a
//! store's test crate calls [`store_conformance!`](crate::store_conformance), which expands to
//! one test per rule, grouped here by the same concepts as [`crate::store`]. It drives the traits
//! directly, so a backend is judged on the contract the lifecycle relies on — the
//! compare-and-swaps, the cascades from remember-me series to their sessions, the filters,
//! the feed's order — not on how its SQL looks.
//!
//! Compiled only with the `conformance` feature (stores enable it for their tests).

use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use crate::secret::{SecretHash, SessionId, SigninId, UserId, random_id};
use crate::store::{RememberToken, Session, Store, Tx, User};

pub mod audit;
pub mod clients;
pub mod feed;
pub mod keys;
pub mod mail;
pub mod outbox;
pub mod sessions;
pub mod signals;
pub mod signins;
pub mod tokens;
pub mod transactions;
pub mod users;

/// Expands, in a store's test crate, to one `#[tokio::test]` per rule of the contract, each on
/// a fresh, empty store: `fresh` is an async closure returning `(Arc<dyn Store>, guard)`, the
/// guard kept (and then dropped) for the test's length, so a database or file made for it can
/// be removed. `cargo test` then names the rule that failed.
///
/// ```ignore
/// signoff_core::store_conformance!(|| async { (Arc::new(MyStore::new()) as Arc<dyn Store>, ()) });
/// ```
#[macro_export]
macro_rules! store_conformance {
    ($fresh:expr) => {
        $crate::store_conformance!(@rules $fresh;
            users::addresses_are_unique_and_writes_are_read_back,
            sessions::activity_never_moves_backwards_and_the_most_recent_is_listed_first,
            sessions::one_the_cap_and_all_of_end_exactly_what_they_name,
            sessions::expired_sessions_are_found_per_owner_and_ended_per_user,
            sessions::ending_a_session_ends_its_series_and_what_was_opened_from_it,
            sessions::all_of_keeps_the_kept_and_named_series_and_an_unbound_session_outlives_its_series,
            sessions::the_sweep_and_the_cap_pick_the_right_series,
            sessions::remember_compare_and_swap,
            sessions::a_sign_in_is_kept_across_rotation_and_by_its_series,
            sessions::ending_and_bumping_at_once_is_the_two_calls,
            sessions::locking_and_reading_at_once_is_the_two_calls,
            tokens::refresh_compare_and_swap,
            keys::keys_and_denials,
            keys::keys_of_every_algorithm,
            feed::feed_keeps_order_and_kinds,
            feed::the_head_never_moves_back,
            clients::clients_are_kept_and_deleted,
            clients::a_clients_secret_is_swapped_only_from_the_one_it_has,
            clients::a_clients_endpoints_are_kept_with_it,
            outbox::deliveries_are_claimed_once_and_recorded_only_under_their_claim,
            outbox::a_clients_deliveries_are_listed_by_page_and_status_retried_and_pruned,
            outbox::webhook_secrets_rotate_with_an_overlap_and_a_gone_callback_is_dropped,
            outbox::hundreds_of_deliveries_are_written_in_one_transaction,
            outbox::claims_are_fair_across_endpoints_and_released_only_under_their_claim,
            outbox::waiting_deliveries_are_never_claimed_and_settle_once,
            audit::audit_events_in_one_statement_keep_order_and_fields,
            mail::mail_tokens_are_used_once_before_they_expire,
            signins::codes_are_spent_once_and_sign_ins_link_their_apps,
            signins::expired_codes_are_pruned,
            signins::a_batch_reads_its_recipients_as_the_three_calls_would,
            signals::a_clients_streams_are_kept_updated_by_compare_and_swap_and_go_with_it,
            signals::received_sets_are_noted_once_per_upstream,
            transactions::an_uncommitted_transaction_leaves_nothing,
        );
    };
    (@rules $fresh:expr; $($concept:ident :: $rule:ident,)*) => {
        $(
            #[tokio::test]
            async fn $rule() {
                let fresh = $fresh;
                let (store, guard) = fresh().await;
                $crate::conformance::$concept::$rule(store).await;
                drop(guard);
            }
        )*
    };
}

/// A fixed instant, to the millisecond (what stores keep).
pub(crate) fn t0() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn hash() -> SecretHash {
    SecretHash::of(b"conformance", random_id().as_bytes())
}

pub(crate) async fn tx(store: &Arc<dyn Store>) -> Box<dyn Tx> {
    store.begin().await.unwrap_or_else(|e| panic!("begin: {e}"))
}

pub(crate) async fn user(store: &Arc<dyn Store>, email: &str) -> User {
    let user = User { id: UserId::generate(), email: email.into(), token_version: 0, created_at: t0() };
    let mut t = tx(store).await;
    t.create_user(&user, "hash").await.unwrap_or_else(|e| panic!("create_user: {e}"));
    t.commit().await.unwrap_or_else(|e| panic!("commit: {e}"));
    user
}

pub(crate) fn session(user: &UserId, created: OffsetDateTime, series: Option<&str>) -> Session {
    Session {
        id: SessionId::generate(),
        user_id: user.clone(),
        secret_hash: hash(),
        created_at: created,
        last_active_at: created,
        expires_at: created + Duration::hours(10),
        ip: Some("192.0.2.1".into()),
        user_agent: None,
        series: series.map(str::to_owned),
        signin: SigninId::generate(),
        authenticated_at: created - Duration::minutes(5),
    }
}

pub(crate) fn series(user: &UserId, session: &SessionId, created: OffsetDateTime) -> RememberToken {
    RememberToken {
        selector: random_id(),
        validator_hash: hash(),
        user_id: user.clone(),
        session_id: session.clone(),
        created_at: created,
        expires_at: created + Duration::days(30),
        previous_hash: None,
        rotated_at: None,
        grace_used: false,
        ip: None,
        user_agent: None,
        signin: SigninId::generate(),
    }
}

pub(crate) async fn insert_sessions(store: &Arc<dyn Store>, sessions: &[&Session]) {
    let mut t = tx(store).await;
    for s in sessions {
        t.insert_session(s).await.unwrap_or_else(|e| panic!("insert_session: {e}"));
    }
    t.commit().await.unwrap_or_else(|e| panic!("commit: {e}"));
}

pub(crate) async fn live(store: &Arc<dyn Store>, id: &SessionId) -> bool {
    store.session_by_id(id).await.unwrap_or_else(|e| panic!("session_by_id: {e}")).is_some()
}

pub(crate) fn ids(sessions: &[Session]) -> Vec<SessionId> {
    let mut ids: Vec<SessionId> = sessions.iter().map(|s| s.id.clone()).collect();
    ids.sort();
    ids
}

pub(crate) fn sorted(mut ids: Vec<SessionId>) -> Vec<SessionId> {
    ids.sort();
    ids
}

pub(crate) fn sorted_users(mut ids: Vec<UserId>) -> Vec<UserId> {
    ids.sort();
    ids
}
