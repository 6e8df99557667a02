//! The authority's half of the e-mail flows: verified e-mail change and password reset.
//!
//! A request writes an outbox row (what to send, to whom), never a link. The outbox worker
//! asks [`Authority::prepare_mail`] when it sends: that makes the link's 256-bit token, stores
//! its hash bound to the account as it is then ([`mail::fingerprint`]) and hands the token to
//! the mail, so no store ever holds a live link. Using a link is a compare-and-swap inside the
//! transaction that acts on it, under the user's lock, with the account checked against the
//! fingerprint in that same transaction.

use std::sync::Arc;
use time::Duration;

use super::{Authority, SessionContext};
use crate::audit::{Actor, AuditKind, ClientInfo};
use crate::email;
use crate::error::CoreError;
use crate::mail::{self, Letter, MailPurpose, MailRequest, MailSecret, MailToken, Prepared};
use crate::outbox::Delivery;
use crate::password;
use crate::policy::Trigger;
use crate::secret::{self, SecretHash, UserId};
use crate::signals::{Change, Initiator};
use crate::store::{StoreError, User, UserCredentials};
use crate::throttle::{address_key, take_all};

/// What confirming a new address did.
#[derive(Debug)]
pub struct EmailConfirmed {
    /// The user, with the new address.
    pub user: User,
    /// The confirming browser's session, rotated, when it is the user's own.
    pub rotated: Option<SessionContext>,
}

/// A change of address waiting for its link to be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEmail {
    pub new_email: String,
    pub expires_at: time::OffsetDateTime,
}

impl Authority {
    /// How long a mailed link works (one hour unless configured).
    pub fn with_mail_link_ttl(mut self, ttl: Duration) -> Self {
        self.mail_link_ttl = ttl;
        self
    }

    /// Asks to change the signed-in user's address: checked like a password change (the
    /// password, limited per account whatever the outcome, and per target address), then a
    /// link to the new address if no account has it, and a notice to the current address either
    /// way. Everything the user and the answer see is the same whether or not the new address
    /// is taken: the change waits for its link either way, as a placeholder token nobody holds
    /// (the link's token takes its place when the mail is sent, keeping its times).
    pub async fn request_email_change(
        &self,
        ctx: &SessionContext,
        current_password: &str,
        new_email: &str,
        client: &ClientInfo,
    ) -> Result<(), CoreError> {
        let l = &self.limits;
        l.email_change.take(ctx.user.id.as_str(), self.now()).map_err(CoreError::Throttled)?;
        self.take_shared(&[l.email_change.counted("email-change", ctx.user.id.as_str())]).await?;
        let email = email::normalize(new_email).ok_or(CoreError::InvalidEmail)?;
        let verified = self.check_password(&ctx.user.email, current_password, client).await?;
        l.email_change_target.take(&email, self.now()).map_err(CoreError::Throttled)?;
        self.take_shared(&[l.email_change_target.counted("email-change-target", &email)]).await?;
        let free = email != ctx.user.email && self.store.user_by_email(&email).await?.is_none();
        let now = self.now();
        let mut batch = self.batch_for(&[&ctx.user.id]).await?;
        Self::still_current(&mut batch, ctx, &verified).await?;
        let account = batch.tx.user_by_id(&ctx.user.id).await?.ok_or(CoreError::Unauthenticated)?;
        let fingerprint = account_fingerprint(&account);
        let placeholder = MailSecret::generate().hash();
        batch
            .tx
            .insert_mail_token(&MailToken {
                hash: placeholder,
                request: Some(placeholder),
                purpose: MailPurpose::EmailChange,
                user_id: ctx.user.id.clone(),
                new_email: Some(email.clone()),
                fingerprint,
                created_at: now,
                expires_at: now + self.mail_link_ttl,
                used_at: None,
            })
            .await?;
        let request = |to: &str| MailRequest {
            to: to.to_owned(),
            user_id: Some(ctx.user.id.to_string()),
            new_email: Some(email.clone()),
            fingerprint: Some(fingerprint.hex()),
            ..MailRequest::default()
        };
        batch.letters.push(Letter::EmailChangeNotice.delivery(&request(&ctx.user.email), now));
        if free {
            let link = MailRequest { placeholder: Some(placeholder.hex()), ..request(&email) };
            batch.letters.push(Letter::EmailChangeLink.delivery(&link, now));
        }
        // The event records which address was asked for (for operators; the answer does not
        // say whether it was free).
        let event = self.event(AuditKind::EmailChangeRequested, Actor::User, client).about(&ctx.session);
        batch.audit(event.detail(&email));
        batch.commit().await
    }

    /// Asks for a password reset link: limited per client address, per target address and
    /// client address together (so nobody else can use up the owner's requests), and per target
    /// address from everywhere at a higher cap (so an inbox cannot be flooded); known addresses
    /// or not alike, so the limits tell nothing. Then one outbox row and one audit event
    /// whether or not an account has the address (the same work either way; the event names
    /// the account when there is one, and the worker sends nothing when there is none). Input
    /// that is not an address at all gets the same answer and writes nothing.
    pub async fn request_password_reset(&self, raw_email: &str, client: &ClientInfo) -> Result<(), CoreError> {
        let key = email::account_key(raw_email);
        let l = &self.limits;
        let ip = address_key(&client.ip);
        let pair = format!("{ip}\n{key}");
        take_all(&[(&l.reset_ip, &ip), (&l.reset_email, &pair), (&l.reset_mailbox, &key)], self.now())
            .map_err(CoreError::Throttled)?;
        self.take_shared(&[
            l.reset_ip.counted("reset-ip", &ip),
            l.reset_email.counted("reset-email-client", &pair),
            l.reset_mailbox.counted("reset-mailbox", &key),
        ])
        .await?;
        if !email::is_address_key(&key) {
            return Ok(());
        }
        let account = self.store.user_by_email(&key).await?;
        let request = MailRequest {
            to: key,
            user_id: account.as_ref().map(|a| a.user.id.to_string()),
            fingerprint: account.as_ref().map(|a| account_fingerprint(a).hex()),
            ..MailRequest::default()
        };
        let mut event = self.event(AuditKind::PasswordResetRequested, Actor::User, client);
        if let Some(account) = &account {
            event = event.user(&account.user.id);
        }
        let mut batch = self.batch().await?;
        batch.letters.push(Letter::PasswordResetLink.delivery(&request, self.now()));
        batch.audit(event);
        batch.commit().await
    }

    /// What the outbox worker writes for a mail row: for a link, a fresh token stored (hashed,
    /// bound to the account). `None` when the mail is not to be sent: no such account (any
    /// more), a reset link for an address the account no longer has, a link for an account
    /// that changed since it was asked for (a new password, address or token version: what
    /// would kill the link kills the request), or a change of address that a newer request
    /// replaced.
    pub async fn prepare_mail(&self, d: &Delivery) -> Result<Option<Prepared>, CoreError> {
        let Some(letter) = Letter::parse(&d.event) else { return Ok(None) };
        let Ok(request) = serde_json::from_str::<MailRequest>(&d.payload) else { return Ok(None) };
        // A registration that created its account has nothing to say (see `Letter::Registration`).
        if letter == Letter::Registration && request.created {
            return Ok(None);
        }
        let Some(user) = request.user_id.clone().map(UserId::from_string) else { return Ok(None) };
        let mut batch = self.batch_for(&[&user]).await?;
        let Some(account) = batch.tx.user_by_id(&user).await? else { return Ok(None) };
        let mut prepared =
            Prepared { letter, to: request.to.clone(), new_email: request.new_email.clone(), link: None };
        let Some(purpose) = letter.purpose() else { return Ok(Some(prepared)) };
        let fingerprint = account_fingerprint(&account);
        let asked = request.fingerprint.as_deref().unwrap_or_default();
        if !secret::ct_eq_str(asked, &fingerprint.hex()) {
            return Ok(None);
        }
        let (secret, now) = (MailSecret::generate(), self.now());
        let stored = match purpose {
            MailPurpose::EmailChange => {
                let Some(placeholder) = request.placeholder.as_deref().and_then(SecretHash::from_hex) else {
                    return Ok(None);
                };
                match batch.tx.replace_mail_token(&placeholder, &secret.hash(), now).await? {
                    Some(token) => token,
                    None => return Ok(None),
                }
            }
            MailPurpose::PasswordReset => {
                if account.user.email != request.to {
                    return Ok(None);
                }
                let token = MailToken {
                    hash: secret.hash(),
                    purpose,
                    user_id: user.clone(),
                    new_email: None,
                    fingerprint,
                    request: None,
                    created_at: now,
                    expires_at: now + self.mail_link_ttl,
                    used_at: None,
                };
                batch.tx.insert_mail_token(&token).await?;
                token
            }
        };
        batch.commit().await?;
        prepared.link = Some((secret, stored.expires_at));
        Ok(Some(prepared))
    }

    /// What a link's page may say before its button is pressed: whether the link could still
    /// be used (unused, unexpired, the account unchanged since it was made), and for a change
    /// of address, the new address. A plain read: the button's post decides (compare-and-swap).
    pub async fn peek_link(&self, presented: &str, purpose: MailPurpose) -> Result<Option<MailToken>, CoreError> {
        let token = match self.mail_token_for(presented, purpose).await {
            Ok(token) => token,
            Err(CoreError::InvalidToken) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(account) = self.store.user_by_id(&token.user_id).await? else { return Ok(None) };
        Ok(account_fingerprint(&account).ct_eq(&token.fingerprint).then_some(token))
    }

    /// The stored token a link carries, if it is one of `purpose` that could still be used.
    async fn mail_token_for(&self, presented: &str, purpose: MailPurpose) -> Result<MailToken, CoreError> {
        let secret = MailSecret::parse(presented).ok_or(CoreError::InvalidToken)?;
        match self.store.mail_token(&secret.hash()).await? {
            Some(t) if t.purpose == purpose && t.used_at.is_none() && t.expires_at > self.now() => Ok(t),
            _ => Err(CoreError::InvalidToken),
        }
    }

    /// Uses a link's token inside `batch` (compare-and-swap: unused, unexpired, this purpose)
    /// and checks the account still matches what the link was made for. Returns the user.
    async fn consume_link(
        &self,
        batch: &mut super::Batch<'_>,
        token: &MailToken,
    ) -> Result<UserCredentials, CoreError> {
        let used = batch.tx.consume_mail_token(&token.hash, token.purpose, self.now()).await?;
        let used = used.filter(|t| t.user_id == token.user_id).ok_or(CoreError::InvalidToken)?;
        let account = batch.tx.user_by_id(&used.user_id).await?.ok_or(CoreError::InvalidToken)?;
        if !account_fingerprint(&account).ct_eq(&used.fingerprint) {
            return Err(CoreError::InvalidToken);
        }
        Ok(account)
    }

    /// Confirms a new address with its link: the address changes and the e-mail-change policy
    /// runs (every other session and token of the user ends, the token version moves on). The
    /// confirming browser's session, if it is the user's, is kept and rotated.
    pub async fn confirm_email_change(
        &self,
        presented: &str,
        current: Option<&SessionContext>,
        client: &ClientInfo,
    ) -> Result<EmailConfirmed, CoreError> {
        let token = self.mail_token_for(presented, MailPurpose::EmailChange).await?;
        let new_email = token.new_email.clone().ok_or(CoreError::InvalidToken)?;
        let mut batch = self.batch_for(&[&token.user_id]).await?;
        let account = self.consume_link(&mut batch, &token).await?;
        let user = &account.user.id;
        match batch.tx.set_email(user, &new_email).await {
            // Taken since the link was sent: nothing changes (the rollback leaves the link unused).
            Err(StoreError::Conflict) => return Err(CoreError::InvalidToken),
            other => other?,
        }
        // This browser's session is kept only if it is the user's and still lives.
        let mut keep = None;
        if let Some(ctx) = current.filter(|c| &c.user.id == user)
            && batch.tx.session_by_id(&ctx.session.id).await?.is_some_and(|(s, _)| &s.user_id == user)
        {
            keep = Some(ctx);
        }
        batch.signals.push(Change::EmailChanged {
            user: user.clone(),
            old_email: account.user.email.clone(),
            new_email: new_email.clone(),
            by: Initiator::User,
            at: self.now(),
        });
        let rotated = self.apply(&mut batch, Trigger::EmailChanged, user, keep, client).await?;
        let event = self.event(AuditKind::EmailChanged, Actor::User, client);
        batch.audit(match keep {
            Some(ctx) => event.about(&ctx.session),
            None => event.user(user),
        });
        batch.commit().await?;
        let mut user = account.user;
        user.email = new_email.clone();
        user.token_version += 1;
        let rotated = rotated.map(|mut r| {
            Arc::make_mut(&mut r.user).email = new_email;
            r
        });
        Ok(EmailConfirmed { user, rotated })
    }

    /// Sets a new password with a reset link: every session, refresh family, remember-me
    /// series and access token of the user ends, whoever asks (see [`Trigger::PasswordReset`]),
    /// and the account's address is told.
    pub async fn reset_password(
        &self,
        presented: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<(User, u64), CoreError> {
        let token = self.mail_token_for(presented, MailPurpose::PasswordReset).await?;
        let owner = self.store.user_by_id(&token.user_id).await?.ok_or(CoreError::InvalidToken)?;
        password::check_policy(new_password, &owner.user.email).map_err(CoreError::WeakPassword)?;
        let hash = self.passwords.hash(new_password).await?;
        let mut batch = self.batch_for(&[&token.user_id]).await?;
        let account = self.consume_link(&mut batch, &token).await?;
        let user = &account.user.id;
        batch.tx.set_password(user, &hash).await?;
        batch.signals.push(Change::PasswordChanged {
            user: user.clone(),
            reason: Trigger::PasswordReset.reason().into(),
            by: Initiator::User,
            at: self.now(),
        });
        let before = batch.sessions_ended();
        self.apply(&mut batch, Trigger::PasswordReset, user, None, client).await?;
        let ended = batch.sessions_ended() - before;
        batch.audit(self.event(AuditKind::PasswordReset, Actor::User, client).user(user));
        let notice =
            MailRequest { to: account.user.email.clone(), user_id: Some(user.to_string()), ..MailRequest::default() };
        batch.letters.push(Letter::PasswordResetDone.delivery(&notice, self.now()));
        batch.commit().await?;
        Ok((account.user, ended))
    }

    /// The user's change of address waiting for confirmation, if its link still works.
    pub async fn pending_email_change(&self, user: &UserId) -> Result<Option<PendingEmail>, CoreError> {
        let Some(token) = self.store.pending_mail_token(user, MailPurpose::EmailChange, self.now()).await? else {
            return Ok(None);
        };
        let Some(account) = self.store.user_by_id(user).await? else { return Ok(None) };
        Ok(token
            .new_email
            .filter(|_| account_fingerprint(&account).ct_eq(&token.fingerprint))
            .map(|new_email| PendingEmail { new_email, expires_at: token.expires_at }))
    }
}

/// The account's [`mail::fingerprint`].
fn account_fingerprint(account: &UserCredentials) -> SecretHash {
    mail::fingerprint(&account.password_hash, &account.user.email, account.user.token_version)
}
