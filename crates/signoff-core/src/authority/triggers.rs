//! Security triggers (password change, security report, admin revoke, Global Token Revocation)
//! carried out as [`crate::policy`] says.

use std::sync::Arc;

use super::{Authority, Batch, ClientInfo, SessionContext};
use crate::audit::{Actor, AuditKind};
use crate::clients::RegisteredClient;
use crate::error::CoreError;
use crate::feed::FeedEntry;
use crate::password;
use crate::policy::Ends;
use crate::policy::Trigger;
use crate::secret::{self, SessionId, SessionSecret, UserId};
use crate::signals::{Change, Initiator};
use crate::store::{RememberFilter, SessionFilter, User, UserCredentials};
use crate::subject::{SubjectId, UserRef};

impl Authority {
    /// The password a request proved before its transaction (argon2 is slow) is still the
    /// account's, read inside it; returns the user as it is now. A password changed meanwhile
    /// makes the request fail as if the password were wrong, with nothing written.
    pub(super) async fn password_still(batch: &mut Batch<'_>, verified: &UserCredentials) -> Result<User, CoreError> {
        match batch.tx.user_by_id(&verified.user.id).await? {
            Some(now) if secret::ct_eq_str(&now.password_hash, &verified.password_hash) => Ok(now.user),
            _ => Err(CoreError::InvalidCredentials),
        }
    }

    /// The check behind a password or e-mail change, made again inside its transaction: the
    /// caller's session still lives and the password it proved is still the account's.
    /// Anything that committed since (another password change, a revocation of this session)
    /// makes this change `401`, with nothing written.
    pub(super) async fn still_current(
        batch: &mut Batch<'_>,
        ctx: &SessionContext,
        verified: &UserCredentials,
    ) -> Result<(), CoreError> {
        let live = batch.tx.session_by_id(&ctx.session.id).await?.is_some_and(|(s, _)| s.user_id == ctx.user.id);
        let same = verified.user.id == ctx.user.id
            && match Self::password_still(batch, verified).await {
                Ok(_) => true,
                Err(CoreError::InvalidCredentials) => false,
                // A store that cannot answer is no verdict (503, not 401).
                Err(e) => return Err(e),
            };
        if live && same { Ok(()) } else { Err(CoreError::Unauthenticated) }
    }

    /// Changes the password: the current session survives with a new id, everything else of
    /// the user ends (see [`Trigger::PasswordChanged`]).
    pub async fn change_password(
        &self,
        ctx: &SessionContext,
        current_password: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<SessionContext, CoreError> {
        let verified = self.check_password(&ctx.user.email, current_password, client).await?;
        password::check_policy(new_password, &ctx.user.email).map_err(CoreError::WeakPassword)?;
        let hash = self.passwords.hash(new_password).await?;
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        Self::still_current(&mut batch, ctx, &verified).await?;
        batch.tx.set_password(&ctx.user.id, &hash).await?;
        batch.signals.push(Change::PasswordChanged {
            user: ctx.user.id.clone(),
            reason: Trigger::PasswordChanged.reason().into(),
            by: Initiator::User,
            at: self.now(),
        });
        let rotated = self.apply(&mut batch, Trigger::PasswordChanged, &ctx.user.id, Some(ctx), client).await?;
        batch.audit(self.event(AuditKind::PasswordChanged, Actor::User, client).about(&ctx.session));
        batch.commit().await?;
        rotated.ok_or(CoreError::Unauthenticated)
    }

    /// A user reports a security concern: every session and token of theirs ends, this one too.
    pub async fn report_concern(
        &self,
        ctx: &SessionContext,
        details: &str,
        client: &ClientInfo,
    ) -> Result<u64, CoreError> {
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        let before = batch.sessions_ended();
        self.apply(&mut batch, Trigger::SecurityReport, &ctx.user.id, Some(ctx), client).await?;
        let ended = batch.sessions_ended() - before;
        batch.audit(self.event(AuditKind::SecurityReport, Actor::User, client).about(&ctx.session).detail(details));
        batch.commit().await?;
        Ok(ended)
    }

    /// An administrator ends every session and token of a user.
    pub async fn admin_revoke(&self, user: &UserId, reason: &str, client: &ClientInfo) -> Result<u64, CoreError> {
        if self.store.user_by_id(user).await?.is_none() {
            return Err(CoreError::NotFound);
        }
        let mut batch = self.batch_for(&[user]).await?;
        self.apply(&mut batch, Trigger::AdminRevoke, user, None, client).await?;
        let ended = batch.sessions_ended();
        batch.audit(self.event(AuditKind::AdminRevoke, Actor::Admin, client).user(user).detail(reason));
        batch.commit().await?;
        Ok(ended)
    }

    /// Global Token Revocation, asked by a registered client allowed to: every session,
    /// refresh token, remember-me device and access token of the user `subject` names ends,
    /// proven on every node before this returns. `NotFound` when it names nobody here,
    /// `Conflict` when its aliases name different users, `Forbidden` for a client not allowed
    /// to. Who is named is decided again inside the transaction that revokes.
    pub async fn global_token_revocation(
        &self,
        by: &RegisteredClient,
        subject: &SubjectId,
        client: &ClientInfo,
    ) -> Result<u64, CoreError> {
        if !by.profile.global_token_revocation {
            return Err(CoreError::Forbidden);
        }
        let named = subject.users(&self.tokens.policy.issuer);
        let user = self.named_user(&named).await?.ok_or(CoreError::NotFound)?;
        let mut batch = self.batch_for(&[&user]).await?;
        // The user's lock is held from here: the address still names them (it did not move to
        // another account meanwhile), else nothing is done.
        let still = match batch.tx.user_by_id(&user).await? {
            Some(now) => named.iter().any(|n| match n {
                UserRef::Email(address) => &now.user.email == address,
                UserRef::Id(id) => now.user.id.as_str() == id,
            }),
            None => false,
        };
        if !still {
            return Err(CoreError::NotFound);
        }
        self.apply(&mut batch, Trigger::GlobalTokenRevocation, &user, None, client).await?;
        let ended = batch.sessions_ended();
        batch.audit(
            self.event(AuditKind::GlobalTokenRevocation, Actor::Client, client).user(&user).detail(by.name.as_str()),
        );
        batch.commit().await?;
        Ok(ended)
    }

    /// The one user `named` names (several names may name them: aliases), `None` when none is
    /// known here; `Conflict` when they name different users.
    async fn named_user(&self, named: &[UserRef]) -> Result<Option<UserId>, CoreError> {
        let mut found: Option<UserId> = None;
        for n in named {
            let user = match n {
                UserRef::Email(address) => self.store.user_by_email(address).await?,
                UserRef::Id(id) => self.store.user_by_id(&UserId::from_string(id.clone())).await?,
            };
            match (user, &found) {
                (Some(u), Some(f)) if &u.user.id != f => return Err(CoreError::Conflict),
                (Some(u), None) => found = Some(u.user.id),
                _ => {}
            }
        }
        Ok(found)
    }

    /// Carries out a trigger's [`Consequences`](crate::policy::Consequences) inside `batch`.
    /// Returns the rotated current session, when the policy keeps and rotates it.
    pub(super) async fn apply(
        &self,
        batch: &mut Batch<'_>,
        trigger: Trigger,
        user: &UserId,
        current: Option<&SessionContext>,
        client: &ClientInfo,
    ) -> Result<Option<SessionContext>, CoreError> {
        let c = trigger.consequences();
        let keep = match c.ends {
            Ends::Others => current.map(|ctx| std::slice::from_ref(&ctx.session.id)),
            Ends::All => None,
        };
        let event = self.event(AuditKind::SessionRevoked, trigger.actor(), client).reason(trigger.reason());
        let before = batch.sessions_ended();
        let filter = SessionFilter::AllOf { user, keep: keep.unwrap_or_default(), keep_series: None };
        let (_, token_version) = batch.end_bumping(filter, c.bump_token_version, &event).await?;
        batch.quiet |= !c.notify;
        if c.revoke_all_tokens {
            // The kept session outlives every series, its own included: unbind it first.
            if let Some(ctx) = current.filter(|_| keep.is_some()) {
                batch.tx.unbind_series(&ctx.session.id).await?;
            }
            batch.drop_series(RememberFilter::AllOfUser(user), &event).await?;
            batch.tx.revoke_user_refresh(user).await?;
        }
        // Every session of the user ended at once: streams hear of the user as a whole too (their
        // own sessions of the user may live on where signoff had none). A signal received is sent
        // on only when it ended something here, so two transmitters that listen to each other
        // do not echo.
        if keep.is_none() && (trigger != Trigger::SharedSignal || batch.sessions_ended() > before) {
            batch.signals.push(Change::AllSessionsEnded {
                user: user.clone(),
                reason: trigger.reason().into(),
                by: Initiator::of(trigger.actor()),
                at: event.at,
            });
        }
        let (true, Some(ctx)) = (c.rotate_current && keep.is_some(), current) else {
            return Ok(None);
        };
        let secret = SessionSecret::generate();
        let id = SessionId::generate();
        if !batch.tx.rotate_session(&ctx.session.id, &id, &secret.hash()).await? {
            // The session ended under us: nothing of this change may commit.
            return Err(CoreError::Unauthenticated);
        }
        batch.audit(
            self.event(AuditKind::SessionRotated, Actor::Policy, client).reason(trigger.reason()).about(&ctx.session),
        );
        // The old id is dead (the feed says so, and so do the clients' deliveries): an
        // application that keyed its own session on it must end that, or it outlives every
        // later logout of the new id.
        batch.ended.push(FeedEntry::Rekeyed {
            old: ctx.session.id.clone(),
            new: id.clone(),
            user_id: Some(user.clone()),
            reason: Some(trigger.reason().to_owned()),
        });
        let mut rotated = ctx.clone();
        let session = Arc::make_mut(&mut rotated.session);
        session.id = id;
        session.secret_hash = secret.hash();
        rotated.secret = secret;
        if let Some(v) = token_version {
            Arc::make_mut(&mut rotated.user).token_version = v;
        }
        Ok(Some(rotated))
    }
}
