//! Sign-in and resume: a password check under the limits, a new session (and remember-me
//! series), the per-user cap, and signing a remembered browser back in.

use std::sync::Arc;
use time::Duration;

use super::{Authority, Batch, BatchKind, ClientInfo, SessionContext, batch::store_event};
use crate::audit::{Actor, AuditKind};
use crate::email;
use crate::error::CoreError;
use crate::remember::RememberSecret;
use crate::secret::{SessionId, SessionSecret, SigninId, UserId};
use crate::store::{RememberFilter, RememberToken, Session, SessionFilter, User, UserCredentials};
use crate::throttle::{Attempt, Outcome, Refusal, SharedRefusal};

/// A new session, and the remember-me token to set with it, if any.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub ctx: SessionContext,
    pub remember: Option<RememberSecret>,
}

/// What a remember-me cookie led to.
#[derive(Debug)]
pub enum Resume {
    /// A fresh session (and the rotated token, unless this was a tab racing a rotation).
    Resumed(Box<SignedIn>),
    /// Unknown or expired: no session; the cookie is useless.
    Invalid,
    /// Another request rotated this token a moment ago: no session here, the other request's
    /// answer carries the new cookies.
    LostRace,
    /// An already-used validator: the series and its session were revoked.
    Theft,
}

impl Authority {
    /// Checks credentials and opens a brand-new session. `previous` and `previous_remember`
    /// are whatever session and remember-me secrets the client sent along: they are never
    /// reused, and are ended if live, so a planted cookie cannot survive a sign-in.
    pub async fn login(
        &self,
        raw_email: &str,
        password: &str,
        remember_me: bool,
        previous: (Option<&SessionSecret>, Option<&RememberSecret>),
        client: &ClientInfo,
    ) -> Result<SignedIn, CoreError> {
        // An unparseable address is just another wrong credential: same answer, same cost.
        let key = email::account_key(raw_email);
        let verified = self.check_password(&key, password, client).await?;

        let old = match previous.0 {
            Some(secret) => self.peek(secret).await?,
            None => None,
        };
        // The leftover remember-me series is deleted too: its owner's lock goes with the others.
        let leftover = match previous.1 {
            Some(r) => self.store.remember_by_selector(r.selector()).await?.map(|t| t.user_id),
            None => None,
        };
        let users: Vec<&UserId> = std::iter::once(&verified.user.id)
            .chain(old.as_ref().map(|o| &o.user.id))
            .chain(leftover.as_ref())
            .collect();
        let mut batch = self.batch_for(&users).await?;
        // A password changed since it was checked opens nothing.
        let user = Self::password_still(&mut batch, &verified).await?;
        let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("superseded");
        // The same account signing in again in this browser (asked for its password again, say)
        // carries on the browser's sign-in, so its apps stay signed in; another account starts
        // a sign-in of its own.
        let continues = old.as_ref().filter(|o| o.user.id == user.id).map(|o| o.session.signin.clone());
        if let Some(old) = old {
            batch.end(SessionFilter::One { user: &old.user.id, id: &old.session.id }, &event).await?;
        }
        if let Some(r) = previous.1 {
            batch.drop_series(RememberFilter::Selector(r.selector()), &event).await?;
        }
        let signed_in =
            self.open_session(&mut batch, user, None, continues.as_ref(), remember_me, "password", client).await?;
        self.cap_sessions(&mut batch, &signed_in, client).await?;
        batch.commit().await?;
        Ok(signed_in)
    }

    /// Verifies a password under the sign-in limits and returns the account with the hash it
    /// matched. A wrong password or an unknown account is `InvalidCredentials`, counted against
    /// the account and the address. Attempts in flight count as if they will fail (a burst of
    /// parallel guesses gets no more tries than the limit; the excess is `Busy`), and the
    /// look-up, the hash and the counting run as a task of their own, so a client that hangs
    /// up while its password is hashed is counted all the same. Only failures are recorded:
    /// successful sign-ins are never throttled.
    pub(super) async fn check_password(
        &self,
        key: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<UserCredentials, CoreError> {
        let counted = self.limits.login.counted(key, &client.ip);
        let attempt = match Attempt::begin(&self.limits, key, &client.ip, self.now()) {
            Ok(attempt) => attempt,
            Err(Refusal::Throttled(wait)) => {
                tracing::warn!(target: "audit", event = "login_throttled", ip = %client.ip, "sign-in refused: too many failures");
                return Err(CoreError::Throttled(wait));
            }
            Err(Refusal::Busy) => return Err(CoreError::Busy(Duration::seconds(1))),
        };
        let (store, passwords, counters) = (self.store.clone(), self.passwords.clone(), self.counters.clone());
        let (key, password, now) = (key.to_owned(), password.to_owned(), self.now());
        let failed = self.event(AuditKind::LoginFailed, Actor::User, client).reason("bad_credentials");
        let (ip, limits) = (client.ip.clone(), self.limits.clone());
        let checked = tokio::spawn(async move {
            // On several nodes the attempt is counted on the shared counters before its password
            // is hashed, in flight, in one atomic take that refuses it at the limit: a burst
            // spread over the nodes gets no more guesses than one node would. Settled below.
            let taken = match &counters {
                Some(counters) => match counters.take(&counted, now, true).await? {
                    Ok(taken) => Some(taken),
                    Err(SharedRefusal::Throttled { wait, full }) => {
                        // Refused from memory from now on, without asking the database again.
                        limits.login.saturate(&key, &ip, &full, now);
                        tracing::warn!(target: "audit", event = "login_throttled", ip = %ip, "sign-in refused: too many failures (all nodes)");
                        return Err(CoreError::Throttled(wait));
                    }
                    // Full only with attempts still being checked, which may succeed.
                    Err(SharedRefusal::Busy) => return Err(CoreError::Busy(Duration::seconds(1))),
                },
                None => None,
            };
            let settle = async |keep: bool| {
                if let (Some(counters), Some(taken)) = (&counters, &taken)
                    && let Err(e) = counters.settle(taken, keep).await
                {
                    tracing::warn!(error = %e, "could not settle a sign-in on the shared counters");
                }
            };
            let checked = async {
                let account = store.user_by_email(&key).await?;
                let ok = passwords.verify(&password, account.as_ref().map(|a| a.password_hash.as_str())).await?;
                Ok::<_, CoreError>((account, ok))
            }
            .await;
            match checked {
                Ok((Some(account), true)) => {
                    attempt.finish(Outcome::Succeeded);
                    // Successes never count: taken back, and the pair's counter starts over.
                    settle(false).await;
                    if let (Some(counters), Some(pair)) = (&counters, counted.first())
                        && let Err(e) = counters.clear(pair).await
                    {
                        tracing::warn!(error = %e, "could not clear a shared sign-in counter");
                    }
                    Ok(account)
                }
                Ok((account, _)) => {
                    settle(true).await;
                    // Stored either way (bounded by the limiter, which refuses before this
                    // point); an unknown account's event has no user, so only operators see it.
                    let event = match account {
                        Some(account) => failed.user(&account.user.id),
                        None => failed.reason("unknown_account"),
                    };
                    let stored = store_event(&*store, event.clone()).await;
                    attempt.finish(Outcome::Failed);
                    if let Err(e) = stored {
                        // The client may be gone: leave a trace in the log at least.
                        event.log();
                        tracing::error!(error = %e, "could not store a failed sign-in's audit event");
                        return Err(e);
                    }
                    Err(CoreError::InvalidCredentials)
                }
                // Not checked: dropping the attempt ends it unchecked here, and the shared
                // counters take it back.
                Err(e) => {
                    settle(false).await;
                    Err(e)
                }
            }
        });
        checked.await.map_err(|e| CoreError::Internal(format!("password check: {e}")))?
    }

    /// Inserts a new session for `user` in `batch`: opened from the remember-me series `series`
    /// (carrying on its sign-in), or carrying on the sign-in `continues` (a password entered
    /// again in a browser already signed in), or with a new sign-in; with a new series if
    /// `remember_me`. The caller applies the per-user cap last.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn open_session(
        &self,
        batch: &mut Batch<'_>,
        user: User,
        series: Option<&RememberToken>,
        continues: Option<&SigninId>,
        remember_me: bool,
        how: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, CoreError> {
        let now = self.now();
        let secret = SessionSecret::generate();
        let remember = remember_me.then(RememberSecret::generate);
        let session = Session {
            id: SessionId::generate(),
            user_id: user.id.clone(),
            secret_hash: secret.hash(),
            created_at: now,
            last_active_at: now,
            // A session opened from a series ends no later than the series (it lives only while
            // the series does).
            expires_at: series
                .map_or(now + self.policy.absolute_lifetime, |s| s.expires_at.min(now + self.policy.absolute_lifetime)),
            ip: Some(client.ip.clone()),
            user_agent: client.user_agent.clone(),
            series: series
                .map(|s| s.selector.as_str())
                .or(remember.as_ref().map(RememberSecret::selector))
                .map(str::to_owned),
            signin: series.map(|s| &s.signin).or(continues).cloned().unwrap_or_else(SigninId::generate),
            authenticated_at: series.map_or(now, |s| s.created_at),
        };
        batch.tx.insert_session(&session).await?;
        if let Some(r) = &remember {
            batch
                .tx
                .insert_remember(&RememberToken {
                    selector: r.selector().to_owned(),
                    validator_hash: r.validator_hash(),
                    user_id: user.id.clone(),
                    session_id: session.id.clone(),
                    created_at: now,
                    expires_at: now + self.policy.remember_lifetime,
                    previous_hash: None,
                    rotated_at: None,
                    grace_used: false,
                    ip: session.ip.clone(),
                    user_agent: session.user_agent.clone(),
                    signin: session.signin.clone(),
                })
                .await?;
        }
        batch.audit(self.event(AuditKind::Login, Actor::User, client).reason(how).about(&session));
        Ok(SignedIn { ctx: SessionContext { session: Arc::new(session), user: Arc::new(user), secret }, remember })
    }

    /// Ends a user's oldest sessions and least recently used remember-me series beyond the
    /// per-user cap. Called last in a sign-in's batch, after its compare-and-swaps; the session
    /// just opened and its series are spared whatever the clock says (ties included).
    pub(super) async fn cap_sessions(
        &self,
        batch: &mut Batch<'_>,
        new: &SignedIn,
        client: &ClientInfo,
    ) -> Result<(), CoreError> {
        let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("session_limit");
        let (user, session) = (&new.ctx.user.id, &new.ctx.session);
        let keep = self.policy.max_sessions_per_user;
        batch.end(SessionFilter::OldestBeyond { user, keep, spare: &session.id }, &event).await?;
        // Remembered devices count too (a series outlives its session).
        let spare = session.series.as_deref();
        batch.drop_series(RememberFilter::OldestBeyond { user, keep, spare }, &event).await?;
        Ok(())
    }

    /// Signs a browser back in from its remember-me cookie, rotating the validator. See
    /// [`crate::remember`] for the theft rule and the race grace.
    ///
    /// Everything is read and decided inside one transaction: a revocation that committed
    /// first has deleted the series (nothing is created), one that commits after finds the new
    /// session bound to the series and ends it with it.
    pub async fn resume(&self, presented: &RememberSecret, client: &ClientInfo) -> Result<Resume, CoreError> {
        let now = self.now();
        // A cheap look first: an unknown selector (anyone can send one) takes no write lock.
        let Some(seen) = self.store.remember_by_selector(presented.selector()).await? else {
            return Ok(Resume::Invalid);
        };
        let mut batch = self.batch_for(&[&seen.user_id]).await?;
        let Some(token) = batch.tx.remember_by_selector(presented.selector()).await? else {
            return Ok(Resume::Invalid);
        };
        let Some(user) = batch.tx.user_by_id(&token.user_id).await?.map(|c| c.user) else {
            return Ok(Resume::Invalid);
        };
        if now >= token.expires_at {
            let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("remember_expired");
            // The series' sessions end no later than the series: all of it has expired.
            batch.kind = BatchKind::Expiry;
            batch.drop_series(RememberFilter::Selector(&token.selector), &event).await?;
            batch.commit().await?;
            return Ok(Resume::Invalid);
        }
        let hash = presented.validator_hash();
        if hash.ct_eq(&token.validator_hash) {
            let user_id = user.id.clone();
            let mut signed_in =
                self.open_session(&mut batch, user, Some(&token), None, false, "remember_me", client).await?;
            let next = presented.rotated();
            let swapped = batch
                .tx
                .rotate_remember(
                    &token.selector,
                    &token.validator_hash,
                    &next.validator_hash(),
                    &signed_in.ctx.session,
                    now,
                )
                .await?;
            if !swapped {
                return Ok(Resume::LostRace);
            }
            // The session the series backed before, if it still lives, is replaced. The series is
            // already bound to the new session, so ending the old one leaves it alone.
            let event = self.event(AuditKind::SessionRevoked, Actor::Policy, client).reason("superseded");
            batch.end(SessionFilter::One { user: &user_id, id: &token.session_id }, &event).await?;
            self.cap_sessions(&mut batch, &signed_in, client).await?;
            batch.commit().await?;
            signed_in.remember = Some(next);
            return Ok(Resume::Resumed(Box::new(signed_in)));
        }
        if self.replaced_within_grace(&token, &hash, now) {
            // Once per rotation: a second racer (or a replayed copy) gets nothing.
            if !batch.tx.use_remember_grace(&token.selector, &hash).await? {
                return Ok(Resume::LostRace);
            }
            let signed_in =
                self.open_session(&mut batch, user, Some(&token), None, false, "remember_me", client).await?;
            self.cap_sessions(&mut batch, &signed_in, client).await?;
            batch.commit().await?;
            return Ok(Resume::Resumed(Box::new(signed_in)));
        }
        // An old validator is back: the cookie was copied. The series and every session opened
        // from it die.
        let event = self.event(AuditKind::SessionRevoked, Actor::Reuse, client).reason("remember_token_reuse");
        batch.drop_series(RememberFilter::Selector(&token.selector), &event).await?;
        batch.audit(self.event(AuditKind::RememberTokenReuse, Actor::Reuse, client).user(&user.id));
        batch.commit().await?;
        Ok(Resume::Theft)
    }
}
