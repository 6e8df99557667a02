//! A batch: one store transaction with everything to announce once it commits.

use super::Authority;
use std::collections::{HashMap, HashSet};

use crate::audit::{AuditEvent, AuditKind};
use crate::error::CoreError;
use crate::feed::{FeedEntry, Revocation};
use crate::outbox::{self};
use crate::secret::{SessionId, SigninId, UserId};
use crate::signals::{Change, Initiator, SignalStream, emit};
use crate::store::{Announce, Ended, Recipients, RememberFilter, Session, SessionFilter, Store, Tx, User};

/// What a batch is, which decides what its commit proves to the other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchKind {
    /// Any change: proven once it put anything on the revocation feed.
    Change,
    /// A revocation the caller will be told succeeded: even when it finds nothing left to
    /// revoke (a retry of one that committed and then answered 503), it answers only once
    /// every node has applied the feed as far as it goes.
    Revocation,
    /// Ends only what has expired (a [`BatchKind::Change`] as soon as a live session is among
    /// what ends): every node already refuses it from memory (an expiry is judged on times no
    /// node can see later than the store: the absolute end never moves and a cached
    /// `last_active_at` is never newer than the stored one), so the commit is not proven to the
    /// other nodes (the feed still tells their event streams).
    Expiry,
}

/// Changes in flight: one store transaction plus the audit events and revocations to announce
/// once it commits. Dropping it uncommitted rolls everything back and announces nothing.
pub(super) struct Batch<'a> {
    pub(super) authority: &'a Authority,
    pub(super) tx: Box<dyn Tx>,
    /// The audit events, in order: written in one statement at commit, logged after it.
    pub(super) events: Vec<AuditEvent>,
    /// Everything this batch ended, in order, in the feed's one vocabulary: sessions, token
    /// denials and version bumps, re-keyed sessions, key changes, removed clients. It goes on
    /// the revocation feed; the in-memory checks, the session cache, the open pages and the
    /// registered clients' deliveries (`outbox::deliveries_for`) are all derived from it.
    pub(super) ended: Vec<FeedEntry>,
    /// Ended sessions are not announced to their open pages (the feed and caches still learn).
    pub(super) quiet: bool,
    /// What the commit must prove to the other nodes before the caller is answered.
    pub(super) kind: BatchKind,
    /// Mail to users (the same outbox), enqueued in the same transaction.
    pub(super) letters: Vec<outbox::Delivery>,
    /// The users whose credentials this batch decides about (their locks taken), and whether it
    /// ended any session or remember-me series: at commit, those users' sign-ins that no
    /// session or series carries any more have ended, and each app they signed in to is told.
    pub(super) users: Vec<UserId>,
    pub(super) ended_any: bool,
    /// What the Shared Signals streams are told (in the same transaction): every ended session
    /// but an expired one, and the changes the batch's callers note. A sign-in may stand here
    /// more than once (several of its sessions ended); `security_events` tells it once.
    pub(super) signals: Vec<Change>,
}

impl Batch<'_> {
    /// Records an audit event, written with the rest at commit (one statement for all).
    pub(super) fn audit(&mut self, event: AuditEvent) {
        self.events.push(event);
    }

    /// Ends the sessions matching `filter` (with the remember-me series they back and the
    /// sessions bound to those), one `event` per ended session.
    pub(super) async fn end(&mut self, filter: SessionFilter<'_>, event: &AuditEvent) -> Result<u64, CoreError> {
        let ended = self.tx.end_sessions(filter).await?;
        self.ended(ended, event).await
    }

    /// [`end`](Self::end), bumping the user's token version in the same store call when `bump`
    /// (see [`end_sessions`](Self::end_sessions)): how many sessions ended, and the new version.
    pub(super) async fn end_bumping(
        &mut self,
        filter: SessionFilter<'_>,
        bump: bool,
        event: &AuditEvent,
    ) -> Result<(u64, Option<i64>), CoreError> {
        let (ended, version) = self.end_sessions(filter, bump).await?;
        let n = self.ended(ended, event).await?;
        if let Some(version) = version {
            self.bumped(filter.user(), version);
        }
        Ok((n, version))
    }

    /// Deletes remember-me series and ends every session opened from them, one `event` each.
    pub(super) async fn drop_series(
        &mut self,
        filter: RememberFilter<'_>,
        event: &AuditEvent,
    ) -> Result<u64, CoreError> {
        let ended = self.tx.delete_remember(filter).await?;
        self.ended(ended, event).await
    }

    /// Audits and queues for announcement what a store call ended.
    pub(super) async fn ended(&mut self, ended: Ended, event: &AuditEvent) -> Result<u64, CoreError> {
        let series = ended.series;
        let ended = ended.sessions;
        // A session ended with its expired series may itself still be live (the series can be
        // configured shorter than a session): that is a revocation, and it is proven.
        let now = self.authority.now();
        if self.kind == BatchKind::Expiry && ended.iter().any(|s| self.authority.is_live(s, now)) {
            self.kind = BatchKind::Change;
        }
        self.events.extend(ended.iter().map(|s| event.about(s)));
        let reason = event.reason.clone().unwrap_or_else(|| event.kind.as_str().to_owned());
        self.ended_any |= !ended.is_empty() || series > 0;
        for s in &ended {
            if !self.users.contains(&s.user_id) {
                self.users.push(s.user_id.clone());
            }
        }
        // An expired session ending is no revocation to tell of; a live one ended with its
        // expired series is. (Two sessions of one sign-in are told once: see `security_events`.)
        let told = ended.iter().filter(|s| event.kind != AuditKind::SessionExpired || self.authority.is_live(s, now));
        self.signals.extend(told.map(|s| Change::SessionEnded {
            user: s.user_id.clone(),
            signin: s.signin.clone(),
            reason: reason.clone(),
            by: Initiator::of(event.actor),
            at: event.at,
        }));
        self.ended.extend(ended.iter().map(|s| {
            FeedEntry::Session(Revocation {
                session_id: s.id.clone(),
                user_id: s.user_id.clone(),
                reason: reason.clone(),
                at: event.at,
            })
        }));
        Ok(ended.len() as u64)
    }

    /// The Security Event Tokens this batch's [`signals`](Self::signals) make for the live
    /// streams, as this transaction sees them; each user named by the address receivers knew
    /// (before an address change the batch made).
    async fn security_events(&mut self, streams: &[SignalStream]) -> Result<Vec<outbox::Delivery>, CoreError> {
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        // A sign-in is told of once, however many of its sessions (rotated, resumed) ended: a
        // set, as a global logout may end a hundred thousand.
        let mut told = HashSet::new();
        self.signals.retain(|c| match c {
            Change::SessionEnded { user, signin, .. } => told.insert((user.clone(), signin.clone())),
            _ => true,
        });
        let mut emails: HashMap<UserId, String> = HashMap::new();
        for c in &self.signals {
            if let Change::EmailChanged { user, old_email, .. } = c {
                emails.insert(user.clone(), old_email.clone());
            }
        }
        // Each user read once (one who is gone is told of to nobody).
        let mut read = HashSet::new();
        for c in &self.signals {
            if !emails.contains_key(c.user())
                && read.insert(c.user().clone())
                && let Some(now) = self.tx.user_by_id(c.user()).await?
            {
                emails.insert(now.user.id, now.user.email);
            }
        }
        let issuer = &self.authority.tokens.policy.issuer;
        Ok(emit::deliveries(&self.signals, &emails, streams, issuer, self.authority.now()))
    }

    /// How many sessions this batch has ended so far.
    pub(super) fn sessions_ended(&self) -> u64 {
        self.ended.iter().filter(|e| matches!(e, FeedEntry::Session(_))).count() as u64
    }

    /// Bumps a user's token version: every access token issued before dies.
    pub(super) async fn bump_token_version(&mut self, user: &UserId) -> Result<i64, CoreError> {
        let version = self.tx.bump_token_version(user).await?;
        self.bumped(user, version);
        Ok(version)
    }

    /// Ends the sessions `filter` picks and, with `bump`, bumps their user's token version in
    /// the same store call ([`Tx::end_sessions_and_bump`](crate::store::Tx::end_sessions_and_bump)).
    /// The caller audits what ended (`ended`) and then queues the new version (`bumped`), so
    /// the feed lists the sessions before the token version, as when the two were separate
    /// calls; [`end_bumping`](Self::end_bumping) does both.
    pub(super) async fn end_sessions(
        &mut self,
        filter: SessionFilter<'_>,
        bump: bool,
    ) -> Result<(Ended, Option<i64>), CoreError> {
        if bump {
            let (ended, version) = self.tx.end_sessions_and_bump(filter).await?;
            Ok((ended, Some(version)))
        } else {
            Ok((self.tx.end_sessions(filter).await?, None))
        }
    }

    /// Queues a user's token version, bumped in this batch, for announcement.
    pub(super) fn bumped(&mut self, user: &UserId, version: i64) {
        self.ended.push(FeedEntry::TokenVersion { user_id: user.clone(), version });
    }

    /// Denies one access token (of `user`) until it expires.
    pub(super) async fn deny(&mut self, issuer: &str, jti: &str, exp: i64, user: &UserId) -> Result<(), CoreError> {
        self.tx.deny_token(issuer, jti, exp).await?;
        let (issuer, jti, user_id) = (issuer.to_owned(), jti.to_owned(), Some(user.clone()));
        self.ended.push(FeedEntry::Token { issuer, jti, exp, user_id });
        Ok(())
    }

    /// Denies a machine client's access token until it expires: no user, so no one is notified.
    pub(super) async fn deny_machine(&mut self, issuer: &str, jti: &str, exp: i64) -> Result<(), CoreError> {
        self.tx.deny_token(issuer, jti, exp).await?;
        self.ended.push(FeedEntry::Token { issuer: issuer.to_owned(), jti: jti.to_owned(), exp, user_id: None });
        Ok(())
    }

    /// Commits (with the ended sessions on the revocation feed), then logs the events and
    /// tells this process's watchers of ended sessions; other processes learn from the feed.
    pub(super) async fn commit(self) -> Result<(), CoreError> {
        self.commit_noting().await.map(|_| ())
    }

    /// [`commit`](Self::commit), returning the sign-ins it ended and the back-channel logouts it
    /// queued for their apps (for a logout that waits for them and renders front-channel frames).
    pub(super) async fn commit_noting(mut self) -> Result<Noted, CoreError> {
        let feed = std::mem::take(&mut self.ended);
        // Whose a re-keyed session was is what its clients are told (a denied token names its
        // user too, but for a machine client's, which has none: `deny_machine`).
        debug_assert!(
            feed.iter().all(|e| !matches!(e, FeedEntry::Rekeyed { user_id: None, .. })),
            "a batch records whose session it re-keyed"
        );
        // The sign-ins that ended with their last session or series, decided on the store as
        // this transaction leaves it (a rotation, a resume or a sign-in again carries them on),
        // and who must be told: read together (one round trip on PostgreSQL).
        let tells_clients = feed.iter().any(outbox::tells_clients);
        let users: &[UserId] = if self.ended_any { &self.users } else { &[] };
        let Recipients { signins_ended: apps_out, clients, streams } =
            if !users.is_empty() || tells_clients || !self.signals.is_empty() {
                self.tx.end_signins_and_read_recipients(users, tells_clients, !self.signals.is_empty()).await?
            } else {
                Recipients::default()
            };
        // The outbox first: recording revocations takes the feed's sequence, held until commit.
        let mut notified = false;
        let mut logouts = Vec::new();
        let mut signed_out = Vec::new();
        if tells_clients || !apps_out.is_empty() {
            let now = self.authority.now();
            let mut deliveries = outbox::deliveries_for(&feed, &clients, now);
            let apps = outbox::signins_ended(&apps_out, &clients, now);
            logouts = apps.iter().map(|d| d.id.clone()).collect();
            signed_out = apps_out.iter().map(|(signin, _, client)| (signin.clone(), client.clone())).collect();
            deliveries.extend(apps);
            self.tx.enqueue_deliveries(&deliveries).await?;
            notified = !deliveries.is_empty();
        }
        if !self.letters.is_empty() {
            self.tx.enqueue_deliveries(&self.letters).await?;
            notified = true;
        }
        let mut polled = false;
        if !self.signals.is_empty() {
            let sets = self.security_events(&streams).await?;
            if !sets.is_empty() {
                self.tx.enqueue_deliveries(&sets).await?;
                notified |= sets.iter().any(|d| d.status == outbox::DeliveryStatus::Pending);
                polled = sets.iter().any(|d| d.status == outbox::DeliveryStatus::Waiting);
            }
        }
        if !self.events.is_empty() {
            self.tx.append_audits(&self.events).await?;
        }
        // Expired sessions are refused from memory everywhere already: the nodes read them on
        // their poll, unhinted (see `BatchKind::Expiry`).
        let announce = if self.kind == BatchKind::Expiry { Announce::OnPoll } else { Announce::Now };
        let seq =
            if feed.is_empty() { 0 } else { self.tx.record_revocations(&feed, self.authority.now(), announce).await? };
        // Every position before this commit's first is committed already and none after it can
        // be, so one this process has applied means the feed went back (see `propagate_reused`).
        let (applied, rewinds) = (self.authority.client_feed.head(), self.authority.feed_health.rewinds());
        self.tx.commit().await?;
        // A read of the feed that began before this instant may have missed the commit.
        let committed_at = std::time::Instant::now();
        if notified {
            self.authority.outbox_ready.notify_one();
        }
        if polled {
            self.authority.signals_ready.notify_waiters();
        }
        // Success is answered only once every other node has applied it too. That proof (the
        // hint to the other nodes, then their acknowledgements) starts at once and runs beside
        // this process's own work below, which it does not depend on: the answer waits for both.
        let a = self.authority;
        let kind = self.kind;
        // One position per entry, the last `seq` (a batch never holds an entry of a kind this
        // version does not know, the one kind the stores do not write).
        debug_assert!(!feed.iter().any(|e| matches!(e, FeedEntry::Unknown { .. })));
        let first = seq - feed.len() as i64 + 1;
        let proof = async move {
            match kind {
                _ if seq > 0 && first <= applied => a.propagate_reused(seq, applied, rewinds).await,
                // Nothing to prove (see `BatchKind::Expiry`).
                BatchKind::Expiry => Ok(()),
                _ if seq > 0 => a.propagate(seq).await,
                BatchKind::Revocation => a.propagate_head().await,
                BatchKind::Change => Ok(()),
            }
        };
        let here = async move {
            if seq > 0 {
                // Relying services' feed streams hear of it before the revoker is answered (one
                // read shared with whatever read began after the commit). Until the window has
                // it, this process tells relying services nothing (`FeedHealth`); the checks
                // below do not depend on it.
                a.feed_health.committed(seq);
                if a.client_feed.head() < seq
                    && let Err(e) = a.catch_up_since(committed_at, std::time::Duration::from_millis(500)).await
                {
                    tracing::warn!(
                        seq,
                        error = %e,
                        "revocation committed; relaying it to the feed's clients on the next read"
                    );
                }
                if a.client_feed.head() >= seq {
                    a.relayed(seq).await;
                }
            }
            // In-memory checks first: a request answered after this returns must already see it.
            a.tokens.apply(&feed);
            if feed.iter().any(|e| matches!(e, FeedEntry::Keys { .. })) {
                self.authority.reload_keys().await.inspect_err(|_| {
                    // Committed, but this process still holds the old keys: until it has read
                    // the feed again it must not answer from memory.
                    if let Some(cluster) = &self.authority.cluster {
                        cluster.distrust("signing keys not reloaded");
                    }
                })?;
            }
            for e in &self.events {
                e.log();
            }
            // The cache forgets ended (and re-keyed) sessions before anyone is told they
            // ended. The entries are moved, not copied, out of what the batch ended (a global
            // logout may end thousands of sessions); re-keys are few.
            let mut rekeyed = Vec::new();
            let mut revoked: Vec<Revocation> = Vec::with_capacity(feed.len());
            for entry in feed {
                match entry {
                    FeedEntry::Session(r) => revoked.push(r),
                    FeedEntry::Rekeyed { old, new, .. } => rekeyed.push((old, new)),
                    _ => {}
                }
            }
            let gone = revoked.iter().map(|r| &r.session_id).chain(rekeyed.iter().map(|(old, _)| old));
            self.authority.sessions.remove(gone);
            for (old, new) in &rekeyed {
                self.authority.hub.rekey(old, new);
            }
            if !self.quiet {
                self.authority.hub.publish(&revoked);
            }
            Ok::<(), CoreError>(())
        };
        let (here, proof) = tokio::join!(here, proof);
        here?;
        proof?;
        Ok(Noted { app_logouts: logouts, signed_out })
    }
}

/// What a committed batch ended that its caller may still act on.
#[derive(Debug, Default)]
pub(super) struct Noted {
    /// The ids of the back-channel logouts queued for the apps of the sign-ins that ended.
    pub app_logouts: Vec<String>,
    /// Each ended sign-in with an app it had signed in to (whether or not the app takes
    /// back-channel logouts).
    pub signed_out: Vec<(SigninId, String)>,
}

/// Stores an audit event that goes with no other change, then logs it.
pub(super) async fn store_event(store: &dyn Store, event: AuditEvent) -> Result<(), CoreError> {
    let mut tx = store.begin().await?;
    tx.append_audit(&event).await?;
    tx.commit().await?;
    event.log();
    Ok(())
}

impl Authority {
    /// A batch that first takes the locks of `users` (in one global order), as every batch that
    /// decides about a user's credentials must: concurrent ones then queue instead of
    /// deadlocking (see [`UserTx::lock_user`](crate::store::UserTx::lock_user)).
    pub(super) async fn batch_for(&self, users: &[&UserId]) -> Result<Batch<'_>, CoreError> {
        let mut users = users.to_vec();
        users.sort();
        users.dedup();
        let mut batch = self.batch().await?;
        for user in users {
            batch.tx.lock_user(user).await?;
            batch.users.push(user.clone());
        }
        Ok(batch)
    }

    /// [`batch_for`](Self::batch_for), and then session `id` read under the locks, if it is one
    /// of `users`' (`Tx::session_by_id`); with one user, in the same store call as the lock
    /// (`Tx::lock_user_and_read_session`).
    pub(super) async fn batch_for_reading(
        &self,
        users: &[&UserId],
        id: &SessionId,
    ) -> Result<(Batch<'_>, Option<(Session, User)>), CoreError> {
        if let Some(user) = users.first().filter(|first| users.iter().all(|u| u == *first)) {
            let mut batch = self.batch().await?;
            let read = batch.tx.lock_user_and_read_session(user, id).await?;
            batch.users.push((*user).clone());
            return Ok((batch, read));
        }
        let mut batch = self.batch_for(users).await?;
        let read = batch.tx.session_by_id(id).await?.filter(|(session, _)| users.contains(&&session.user_id));
        Ok((batch, read))
    }

    pub(super) async fn batch(&self) -> Result<Batch<'_>, CoreError> {
        Ok(Batch {
            authority: self,
            tx: self.store.begin().await?,
            events: Vec::new(),
            ended: Vec::new(),
            quiet: false,
            kind: BatchKind::Change,
            letters: Vec::new(),
            users: Vec::new(),
            ended_any: false,
            signals: Vec::new(),
        })
    }
}
