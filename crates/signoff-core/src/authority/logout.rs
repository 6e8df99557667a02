//! Logout and revocation: the one door out, and ending one device by its id.

use std::sync::Arc;
use time::{Duration, OffsetDateTime};

use super::{Authority, Batch, BatchKind, ClientInfo, Presented, SessionContext};
use crate::audit::{Actor, AuditKind};
use crate::error::CoreError;
use crate::policy::LogoutScope;
use crate::remember::RememberSecret;
use crate::secret::{self, SessionId, SigninId, UserId};
use crate::signals::{Change, Initiator};
use crate::store::{Ended, Session, SessionFilter};

/// What a logout did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedOut {
    /// Sessions ended.
    pub ended: u64,
    /// Whether the browser's own credentials ended, so its cookies and storage are cleared:
    /// the scope ends this session ([`LogoutRule::ends_this`](crate::policy::LogoutRule::ends_this)), or there was none to keep.
    pub cleared: bool,
    /// Whether the scope asked to reach other devices and nothing spoke for the account (no
    /// live session: the cookie's, the access token's, or the one its remember-me series backs;
    /// nor a live series whose session has lapsed): nothing but what was presented ended.
    pub no_session: bool,
    /// The back-channel logouts queued for the apps of the sign-ins that ended (see
    /// [`Authority::await_deliveries`]).
    pub app_logouts: Vec<String>,
    /// Each sign-in that ended with an app it had signed in to (front-channel logout frames).
    pub signed_out: Vec<(SigninId, String)>,
}

impl Authority {
    /// Ends sessions for a logout as its scope's [`LogoutRule`](crate::policy::LogoutRule) says, and returns how many
    /// ended. `current` are the caller's live sessions: the cookie's and the access token's,
    /// when a request carries both (each after its own check). `credentials` are what it
    /// presented besides: with a rule that kills them they die too (the access token is denied until it expires, the
    /// refresh token's session and family end, the remember-me series ends with every session
    /// opened from it). Without a session this still kills what was presented.
    pub async fn logout(
        &self,
        current: &[Arc<Session>],
        scope: LogoutScope,
        credentials: &Presented<'_>,
        client: &ClientInfo,
    ) -> Result<LoggedOut, CoreError> {
        // The owners of the presented credentials are locked too: they may have no live session.
        let rule = scope.rule();
        let owners = if current.is_empty() || rule.kills_presented {
            self.presented_owners(credentials).await?
        } else {
            Vec::new()
        };
        let users: Vec<&UserId> = current.iter().map(|s| &s.user_id).chain(&owners).collect();
        // The sessions presented, as this transaction reads them under their users' locks: one
        // ended meanwhile (a racing logout elsewhere) speaks for nobody, so it can never end
        // sessions opened after its own end. The first is read with the locks taken.
        let (mut batch, mut first) = match current.first() {
            Some(first) => {
                let (batch, read) = self.batch_for_reading(&users, &first.id).await?;
                (batch, Some(read))
            }
            None => (self.batch_for(&users).await?, None),
        };
        batch.kind = BatchKind::Revocation;
        let now = self.now();
        let mut still_live = Vec::with_capacity(current.len());
        for session in current {
            let read = match first.take() {
                Some(read) => read,
                None => batch.tx.session_by_id(&session.id).await?,
            };
            if read.is_some_and(|(row, _)| row.user_id == session.user_id && self.is_live(&row, now)) {
                still_live.push(session.clone());
            }
        }
        let current = still_live.as_slice();
        // A browser whose cookie names no live session may still hold a remember-me token that
        // would sign it back in (a tab's resume has just superseded the session, say): that
        // token speaks for the browser, and the series' session is its current one, whatever
        // the scope. Decided here, on the series as this transaction reads it.
        let remembered = match (current.is_empty(), credentials.remember) {
            (true, Some(presented)) => self.live_series(&mut batch, presented).await?,
            _ => None,
        };
        let (series_owner, series_session) = remembered.map_or((None, None), |(u, s)| (Some(u), s));
        let from_series = series_session.is_some();
        let current: Vec<Arc<Session>> = match series_session {
            Some(session) => vec![session],
            None => current.to_vec(),
        };
        // A series whose session is gone still speaks for the browser (it would sign it in again
        // on its next page): "everywhere" ends every session and series of its owner, "others"
        // all of them but this series, so the browser stays remembered and nothing the user
        // asked to end lives on; "this device" ends as without the token.
        let owner_only = series_owner.filter(|_| current.is_empty() && rule.ends_others);
        let keep_series = match &owner_only {
            Some(_) if !rule.ends_this => credentials.remember.map(RememberSecret::selector),
            _ => None,
        };
        let speaks = !current.is_empty() || owner_only.is_some();
        let mut ended = 0;
        if !speaks || rule.kills_presented {
            let event =
                self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("logout");
            ended += self.revoke_presented(&mut batch, credentials, &event).await?;
        }
        if !speaks {
            let noted = batch.commit_noting().await?;
            self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("no_session").log();
            return Ok(LoggedOut {
                ended,
                cleared: true,
                no_session: rule.ends_others,
                app_logouts: noted.app_logouts,
                signed_out: noted.signed_out,
            });
        }
        if from_series || owner_only.is_some() {
            self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("remember_me").log();
        }
        let mut users: Vec<&UserId> = current.iter().map(|s| &s.user_id).chain(owner_only.as_ref()).collect();
        users.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        users.dedup();
        let others = || {
            self.event(AuditKind::SessionRevoked, Actor::OtherSession, client).scope(scope.as_str()).reason("logout")
        };
        let this = || self.event(AuditKind::Logout, Actor::SelfSession, client).scope(scope.as_str()).reason("logout");
        if rule.ends_others && rule.ends_this {
            // Everything of each user, in one store call; the presented sessions are told apart
            // in the audit (this device's logout, the others' revocation).
            // The token version's bump goes with them (one round trip where the store can).
            let (others, this) = (others(), this());
            for user in &users {
                let filter = SessionFilter::AllOf { user, keep: &[], keep_series };
                let (all, version) = batch.end_sessions(filter, rule.bump_token_version).await?;
                let (mine, theirs): (Vec<_>, Vec<_>) =
                    all.sessions.into_iter().partition(|s| current.iter().any(|c| c.id == s.id));
                ended += batch.ended(Ended { sessions: theirs, series: all.series }, &others).await?;
                ended += batch.ended(Ended { sessions: mine, series: 0 }, &this).await?;
                if let Some(version) = version {
                    batch.bumped(user, version);
                }
            }
        } else if rule.ends_others {
            let event = others();
            for user in &users {
                let keep: Vec<SessionId> =
                    current.iter().filter(|s| &s.user_id == *user).map(|s| s.id.clone()).collect();
                let filter = SessionFilter::AllOf { user, keep: &keep, keep_series };
                ended += batch.end_bumping(filter, rule.bump_token_version, &event).await?.0;
            }
        } else if rule.ends_this {
            let event = this();
            for session in &current {
                ended += batch.end(SessionFilter::One { user: &session.user_id, id: &session.id }, &event).await?;
            }
        }
        if rule.ends_others && rule.ends_this {
            // Log out everywhere: streams hear of each session, and of the user as a whole.
            for user in &users {
                batch.signals.push(Change::AllSessionsEnded {
                    user: (*user).clone(),
                    reason: "logout_everywhere".into(),
                    by: Initiator::User,
                    at: self.now(),
                });
            }
        }
        if rule.bump_token_version && !rule.ends_others {
            // (Ending every session of a user bumped it above.)
            for user in users {
                batch.bump_token_version(user).await?;
            }
        }
        let noted = batch.commit_noting().await?;
        Ok(LoggedOut {
            ended,
            cleared: rule.ends_this,
            no_session: false,
            app_logouts: noted.app_logouts,
            signed_out: noted.signed_out,
        })
    }

    /// Inside a batch: the owner of the remember-me series `presented` belongs to, and the
    /// series' session if it lives, when the token would still sign its browser back in (the
    /// series lives and the validator is its current one, or the one it replaced within the
    /// race grace).
    pub(super) async fn live_series(
        &self,
        batch: &mut Batch<'_>,
        presented: &RememberSecret,
    ) -> Result<Option<(UserId, Option<Arc<Session>>)>, CoreError> {
        let now = self.now();
        let Some(token) = batch.tx.remember_by_selector(presented.selector()).await? else { return Ok(None) };
        let hash = presented.validator_hash();
        // The replaced validator only while its once-per-rotation grace is unspent: a copy that
        // a resume would refuse speaks for nobody here either.
        let live =
            hash.ct_eq(&token.validator_hash) || (!token.grace_used && self.replaced_within_grace(&token, &hash, now));
        if now >= token.expires_at || !live {
            return Ok(None);
        }
        let session = batch
            .tx
            .session_by_id(&token.session_id)
            .await?
            .map(|(session, _)| session)
            .filter(|session| session.user_id == token.user_id && self.is_live(session, now))
            .map(Arc::new);
        Ok(Some((token.user_id, session)))
    }

    /// Whether `hash` is the validator the series replaced last, presented within the race
    /// grace (a tab that raced the rotation). No grace configured is no grace; a rotation
    /// another node's clock placed in this one's future counts within the same bound, so a
    /// little skew between nodes neither widens the window nor turns a racing tab into a thief.
    pub(super) fn replaced_within_grace(
        &self,
        token: &crate::store::RememberToken,
        hash: &secret::SecretHash,
        now: OffsetDateTime,
    ) -> bool {
        let grace = self.policy.race_grace;
        grace > Duration::ZERO
            && token.previous_hash.is_some_and(|p| p.ct_eq(hash))
            && token.rotated_at.is_some_and(|at| (now - at).abs() <= grace)
    }

    /// Ends one of the caller's devices by its id: a live session (with the remember-me series
    /// it backs), or a remembered device whose session is gone (its series). Another user's
    /// ids and unknown ids are the same `NotFound`, so ids of other users cannot be probed.
    pub async fn revoke_session(
        &self,
        ctx: &SessionContext,
        id: &SessionId,
        client: &ClientInfo,
    ) -> Result<(), CoreError> {
        let actor = if *id == ctx.session.id { Actor::SelfSession } else { Actor::OtherSession };
        let event = self.event(AuditKind::SessionRevoked, actor, client).reason("revoked");
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        batch.kind = BatchKind::Revocation;
        let ended = batch.tx.end_sessions(SessionFilter::One { user: &ctx.user.id, id }).await?;
        let only_series = ended.sessions.is_empty();
        if only_series && ended.series == 0 {
            return Err(CoreError::NotFound);
        }
        batch.ended(ended, &event).await?;
        if only_series {
            // A remembered device without a live session: record its end all the same.
            batch.audit(event.user(&ctx.user.id).session(id));
        }
        batch.commit().await?;
        Ok(())
    }
}
