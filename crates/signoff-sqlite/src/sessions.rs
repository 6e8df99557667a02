//! Sessions and remember-me series on SQLite: [`signoff_core::store::SessionStore`] and [`signoff_core::store::SessionTx`].

use crate::rows::{backend, db_err, ms, remember_from, session_from, user_from};
use crate::{SqliteStore, SqliteTx, read};
use async_trait::async_trait;
use signoff_core::secret::SecretHash;
use signoff_core::store::{Ended, RememberFilter, RememberToken, Session, SessionFilter, StoreError, User};
use signoff_core::store::{SessionStore, SessionTx};
use signoff_core::{SessionId, UserId};
use sqlx::Row;
use time::OffsetDateTime;

#[async_trait]
impl SessionStore for SqliteStore {
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = ?"
        ))
        .bind(&hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((session_from(&r)?, user_from(&r)?.user))).transpose()
    }
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(&self.pool, id).await
    }
    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.user_id = ? ORDER BY s.last_active_at DESC, s.created_at DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(session_from).collect()
    }
    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE selector = ?"))
            .bind(selector)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }
    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE user_id = ?"))
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(remember_from).collect()
    }
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_active_at = max(last_active_at, ?) WHERE id = ?")
            .bind(ms(at))
            .bind(id.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }
    async fn expired_owners(
        &self,
        now: OffsetDateTime,
        idle_cutoff: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<UserId>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM sessions WHERE expires_at <= ? OR last_active_at <= ? \
             UNION SELECT user_id FROM remember_tokens WHERE expires_at <= ? LIMIT ?",
        )
        .bind(ms(now))
        .bind(ms(idle_cutoff))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(UserId::from_string).collect())
    }
}

#[async_trait]
impl SessionTx for SqliteTx {
    async fn session_by_id(&mut self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(self.conn(), id).await
    }
    async fn remember_by_selector(&mut self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE selector = ?"))
            .bind(selector)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }
    async fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent, \
             series, signin_id, authenticated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.id.as_str())
        .bind(&s.secret_hash.0[..])
        .bind(s.user_id.as_str())
        .bind(ms(s.created_at))
        .bind(ms(s.last_active_at))
        .bind(ms(s.expires_at))
        .bind(s.ip.as_deref())
        .bind(s.user_agent.as_deref())
        .bind(s.series.as_deref())
        .bind(s.signin.as_str())
        .bind(ms(s.authenticated_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn unbind_series(&mut self, session: &SessionId) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET series = NULL WHERE id = ?")
            .bind(session.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(())
    }
    async fn rotate_session(
        &mut self,
        old: &SessionId,
        new: &SessionId,
        hash: &SecretHash,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE sessions SET id = ?, secret_hash = ? WHERE id = ?")
            .bind(new.as_str())
            .bind(&hash.0[..])
            .bind(old.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE remember_tokens SET session_id = ? WHERE session_id = ?")
            .bind(new.as_str())
            .bind(old.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn end_sessions(&mut self, filter: SessionFilter<'_>) -> Result<Ended, StoreError> {
        let (sessions, remember) = match filter {
            SessionFilter::One { user, id } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE id = ? AND user_id = ? RETURNING ",
                    session_returning!()
                ))
                .bind(id.as_str())
                .bind(user.as_str()),
                Some(
                    sqlx::query("DELETE FROM remember_tokens WHERE session_id = ? AND user_id = ? RETURNING selector")
                        .bind(id.as_str())
                        .bind(user.as_str()),
                ),
            ),
            SessionFilter::AllOf { user, keep, keep_series } => {
                let keep =
                    serde_json::to_string(&keep.iter().map(SessionId::as_str).collect::<Vec<_>>()).map_err(backend)?;
                (
                    sqlx::query(concat!(
                        "DELETE FROM sessions WHERE user_id = ? AND id NOT IN (SELECT value FROM json_each(?)) \
                         RETURNING ",
                        session_returning!()
                    ))
                    .bind(user.as_str())
                    .bind(keep.clone()),
                    // The kept sessions' own series survive (the kept sessions are not deleted).
                    Some(
                        sqlx::query(
                            "DELETE FROM remember_tokens WHERE user_id = ? AND selector NOT IN (SELECT series FROM \
                             sessions WHERE id IN (SELECT value FROM json_each(?)) AND series IS NOT NULL) \
                             AND selector IS NOT ? RETURNING selector",
                        )
                        .bind(user.as_str())
                        .bind(keep)
                        .bind(keep_series),
                    ),
                )
            }
            SessionFilter::Lapsed { user, id } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE id = ? AND user_id = ? RETURNING ",
                    session_returning!()
                ))
                .bind(id.as_str())
                .bind(user.as_str()),
                None,
            ),
            SessionFilter::Expired { user, now, idle_cutoff } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE user_id = ? AND (expires_at <= ? OR last_active_at <= ?) RETURNING ",
                    session_returning!()
                ))
                .bind(user.as_str())
                .bind(ms(now))
                .bind(ms(idle_cutoff)),
                None,
            ),
            SessionFilter::OldestBeyond { user, keep, spare } => (
                sqlx::query(concat!(
                    "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE user_id = ? AND id <> ? \
                     ORDER BY created_at DESC, id LIMIT -1 OFFSET ?) RETURNING ",
                    session_returning!()
                ))
                .bind(user.as_str())
                .bind(spare.as_str())
                .bind(keep.saturating_sub(1)),
                None,
            ),
        };
        let rows = sessions.fetch_all(self.conn()).await.map_err(db_err)?;
        let mut ended = Ended { sessions: rows.iter().map(session_from).collect::<Result<Vec<_>, _>>()?, series: 0 };
        let mut selectors: Vec<String> = Vec::new();
        if let Some(remember) = remember {
            selectors = remember.fetch_all(self.conn()).await.map_err(db_err)?.iter().map(|r| r.get(0)).collect();
        } else if let SessionFilter::OldestBeyond { .. } = filter {
            // Sessions ended by the cap take the series they back along.
            for s in &ended.sessions {
                let gone: Vec<String> =
                    sqlx::query_scalar("DELETE FROM remember_tokens WHERE session_id = ? RETURNING selector")
                        .bind(s.id.as_str())
                        .fetch_all(self.conn())
                        .await
                        .map_err(db_err)?;
                selectors.extend(gone);
            }
        }
        ended.series = selectors.len() as u64;
        self.cascade(&selectors, &mut ended).await?;
        Ok(ended)
    }
    async fn insert_remember(&mut self, t: &RememberToken) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO remember_tokens (",
            remember_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(&t.selector)
        .bind(&t.validator_hash.0[..])
        .bind(t.previous_hash.as_ref().map(|h| h.0.to_vec()))
        .bind(t.rotated_at.map(ms))
        .bind(t.user_id.as_str())
        .bind(t.session_id.as_str())
        .bind(ms(t.created_at))
        .bind(ms(t.expires_at))
        .bind(t.grace_used)
        .bind(t.ip.as_deref())
        .bind(t.user_agent.as_deref())
        .bind(t.signin.as_str())
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn rotate_remember(
        &mut self,
        selector: &str,
        expected: &SecretHash,
        validator_hash: &SecretHash,
        session: &Session,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE remember_tokens SET validator_hash = ?, previous_hash = validator_hash, rotated_at = ?, \
             grace_used = 0, session_id = ?, ip = ?, user_agent = ? WHERE selector = ? AND validator_hash = ?",
        )
        .bind(&validator_hash.0[..])
        .bind(ms(at))
        .bind(session.id.as_str())
        .bind(session.ip.as_deref())
        .bind(session.user_agent.as_deref())
        .bind(selector)
        .bind(&expected.0[..])
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn use_remember_grace(&mut self, selector: &str, previous: &SecretHash) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE remember_tokens SET grace_used = 1 WHERE selector = ? AND previous_hash = ? AND grace_used = 0",
        )
        .bind(selector)
        .bind(&previous.0[..])
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn delete_remember(&mut self, filter: RememberFilter<'_>) -> Result<Ended, StoreError> {
        let query = match filter {
            RememberFilter::Selector(s) => {
                sqlx::query_scalar("DELETE FROM remember_tokens WHERE selector = ? RETURNING selector").bind(s)
            }
            RememberFilter::AllOfUser(u) => {
                sqlx::query_scalar("DELETE FROM remember_tokens WHERE user_id = ? RETURNING selector").bind(u.as_str())
            }
            RememberFilter::Expired { user, now } => sqlx::query_scalar(
                "DELETE FROM remember_tokens WHERE user_id = ? AND expires_at <= ? RETURNING selector",
            )
            .bind(user.as_str())
            .bind(ms(now)),
            // The spared series counts as the newest: one place fewer for the others.
            RememberFilter::OldestBeyond { user, keep, spare } => sqlx::query_scalar(
                "DELETE FROM remember_tokens WHERE selector IN (SELECT selector FROM remember_tokens WHERE user_id = ? \
                 AND selector IS NOT ? ORDER BY coalesce(rotated_at, created_at) DESC, selector LIMIT -1 OFFSET ?) \
                 RETURNING selector",
            )
            .bind(user.as_str())
            .bind(spare)
            .bind(if spare.is_some() { keep.saturating_sub(1) } else { keep }),
        };
        let selectors: Vec<String> = query.fetch_all(self.conn()).await.map_err(db_err)?;
        let mut ended = Ended { sessions: Vec::new(), series: selectors.len() as u64 };
        self.cascade(&selectors, &mut ended).await?;
        Ok(ended)
    }
}
