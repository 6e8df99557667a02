//! Sessions and remember-me series on PostgreSQL: [`signoff_core::store::SessionStore`] and [`signoff_core::store::SessionTx`].

use crate::rows::{db_err, ms, remember_from, session_from, user_from};
use crate::{PgStore, PgTx, read};
use async_trait::async_trait;
use signoff_core::secret::SecretHash;
use signoff_core::store::{Ended, RememberFilter, RememberToken, Session, SessionFilter, StoreError, User};
use signoff_core::store::{SessionStore, SessionTx};
use signoff_core::{SessionId, UserId};
use time::OffsetDateTime;

#[async_trait]
impl SessionStore for PgStore {
    async fn session_by_hash(&self, hash: &SecretHash) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.secret_hash = $1"
        ))
        .bind(&hash.0[..])
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.map(|r| Ok((session_from(&r)?, user_from(&r)?.user))).transpose()
    }
    async fn session_by_id(&self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(&self.pool, id, false).await
    }
    async fn user_sessions(&self, user: &UserId) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions s WHERE s.user_id = $1 ORDER BY s.last_active_at DESC, s.created_at DESC"
        ))
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(session_from).collect()
    }
    async fn remember_by_selector(&self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE selector = $1"))
            .bind(selector)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }
    async fn user_remember(&self, user: &UserId) -> Result<Vec<RememberToken>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", remember_columns!(), " FROM remember_tokens WHERE user_id = $1"))
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(remember_from).collect()
    }
    async fn touch_session(&self, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_active_at = GREATEST(last_active_at, $1) WHERE id = $2")
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
            "SELECT user_id FROM sessions WHERE expires_at <= $1 OR last_active_at <= $2 \
             UNION SELECT user_id FROM remember_tokens WHERE expires_at <= $1 LIMIT $3",
        )
        .bind(ms(now))
        .bind(ms(idle_cutoff))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(ids.into_iter().map(UserId::from_string).collect())
    }
}

#[async_trait]
impl SessionTx for PgTx {
    async fn session_by_id(&mut self, id: &SessionId) -> Result<Option<(Session, User)>, StoreError> {
        read::session_by_id(self.conn(), id, true).await
    }
    async fn remember_by_selector(&mut self, selector: &str) -> Result<Option<RememberToken>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            remember_columns!(),
            " FROM remember_tokens WHERE selector = $1 FOR UPDATE"
        ))
        .bind(selector)
        .fetch_optional(self.conn())
        .await
        .map_err(db_err)?;
        row.as_ref().map(remember_from).transpose()
    }
    async fn insert_session(&mut self, s: &Session) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id, secret_hash, user_id, created_at, last_active_at, expires_at, ip, user_agent, \
             series, signin_id, authenticated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        sqlx::query("UPDATE sessions SET series = NULL WHERE id = $1")
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
        let done = sqlx::query("UPDATE sessions SET id = $1, secret_hash = $2 WHERE id = $3")
            .bind(new.as_str())
            .bind(&hash.0[..])
            .bind(old.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        sqlx::query("UPDATE remember_tokens SET session_id = $1 WHERE session_id = $2")
            .bind(new.as_str())
            .bind(old.as_str())
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn end_sessions(&mut self, filter: SessionFilter<'_>) -> Result<Ended, StoreError> {
        Ok(self.end(filter, false).await?.0)
    }
    async fn insert_remember(&mut self, t: &RememberToken) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO remember_tokens (",
            remember_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
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
            "UPDATE remember_tokens SET validator_hash = $1, previous_hash = validator_hash, rotated_at = $2, \
             grace_used = FALSE, session_id = $3, ip = $4, user_agent = $5 WHERE selector = $6 AND validator_hash = $7",
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
            "UPDATE remember_tokens SET grace_used = TRUE WHERE selector = $1 AND previous_hash = $2 \
             AND NOT grace_used",
        )
        .bind(selector)
        .bind(&previous.0[..])
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(done.rows_affected() == 1)
    }
    async fn delete_remember(&mut self, filter: RememberFilter<'_>) -> Result<Ended, StoreError> {
        // The same one statement as `end_sessions`, with no session named directly: the series,
        // the sessions opened from them, their refresh tokens.
        let query = match filter {
            RememberFilter::Selector(s) => sqlx::query(ending!(
                "DELETE FROM sessions WHERE FALSE",
                "DELETE FROM remember_tokens WHERE selector = $1 RETURNING selector"
            ))
            .bind(s),
            RememberFilter::AllOfUser(u) => sqlx::query(ending!(
                "DELETE FROM sessions WHERE FALSE",
                "DELETE FROM remember_tokens WHERE user_id = $1 RETURNING selector"
            ))
            .bind(u.as_str()),
            RememberFilter::Expired { user, now } => sqlx::query(ending!(
                "DELETE FROM sessions WHERE FALSE",
                "DELETE FROM remember_tokens WHERE user_id = $1 AND expires_at <= $2 RETURNING selector"
            ))
            .bind(user.as_str())
            .bind(ms(now)),
            RememberFilter::OldestBeyond { user, keep, spare } => sqlx::query(ending!(
                "DELETE FROM sessions WHERE FALSE",
                "DELETE FROM remember_tokens WHERE selector IN (SELECT selector FROM remember_tokens \
                 WHERE user_id = $1 AND selector IS DISTINCT FROM $2 \
                 ORDER BY coalesce(rotated_at, created_at) DESC, selector OFFSET $3) RETURNING selector"
            ))
            .bind(user.as_str())
            .bind(spare)
            .bind(i64::from(if spare.is_some() { keep.saturating_sub(1) } else { keep })),
        };
        Ok(self.ended_by(query).await?.0)
    }
}

impl PgTx {
    /// `lock_user` and then `session_by_id`, for a session of that user, in one statement. The
    /// user's row is locked by the outer query (`lk`, its count always one row, so the lock is
    /// taken whether or not the session exists), and the session is read by a `LATERAL`
    /// subquery that refers to it, so it runs after the lock: the same order as the two
    /// statements, and as every other transaction takes them (the user, then the session). The
    /// session's row is locked too (`FOR UPDATE OF s`), which after a wait on either lock gives
    /// its newest version, not the one of the statement's snapshot: a session ended or rotated
    /// meanwhile is not found, as with the two statements. Its user's row (the same user, so no
    /// other lock) is locked alike, for the same reason.
    pub(crate) async fn lock_user_and_read_session(
        &mut self,
        user: &UserId,
        id: &SessionId,
    ) -> Result<Option<(Session, User)>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT x.* FROM (SELECT count(*) AS locked FROM (",
            lock_user!(),
            "$1",
            lock_user!(end),
            ") l) lk LEFT JOIN LATERAL (SELECT ",
            session_columns!(),
            ", ",
            user_columns!(),
            " FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $2 AND s.user_id = $1 AND lk.locked >= 0 \
             FOR UPDATE OF s FOR NO KEY UPDATE OF u) x ON TRUE"
        ))
        .bind(user.as_str())
        .bind(id.as_str())
        .fetch_one(self.conn())
        .await
        .map_err(db_err)?;
        // The outer row is always there; the session's columns are null when it is not.
        if sqlx::Row::try_get::<Option<String>, _>(&row, "id").map_err(db_err)?.is_none() {
            return Ok(None);
        }
        Ok(Some((session_from(&row)?, user_from(&row)?.user)))
    }

    /// Ends the sessions `filter` picks (`end_sessions`) and, with `bump`, bumps their user's
    /// token version in the same statement, returning the new one (`end_sessions_and_bump`).
    pub(crate) async fn end(
        &mut self,
        filter: SessionFilter<'_>,
        bump: bool,
    ) -> Result<(Ended, Option<i64>), StoreError> {
        // The statement for the sessions and series given, bumping the token version of the
        // user in placeholder `$user` when `bump`.
        macro_rules! ending_or_bumping {
            ($sessions:expr, $series:expr, $user:literal) => {
                sqlx::query(if bump { ending!($sessions, $series, $user) } else { ending!($sessions, $series) })
            };
        }
        // One statement: the sessions, the series they back, the sessions bound to those, and
        // their refresh tokens (see `ending!`), and the bump.
        let query = match filter {
            SessionFilter::One { user, id } => ending_or_bumping!(
                "DELETE FROM sessions WHERE id = $1 AND user_id = $2",
                "DELETE FROM remember_tokens WHERE session_id = $1 AND user_id = $2 RETURNING selector",
                "$2"
            )
            .bind(id.as_str())
            .bind(user.as_str()),
            SessionFilter::Lapsed { user, id } => ending_or_bumping!(
                "DELETE FROM sessions WHERE id = $1 AND user_id = $2",
                "SELECT NULL::text AS selector WHERE FALSE",
                "$2"
            )
            .bind(id.as_str())
            .bind(user.as_str()),
            SessionFilter::AllOf { user, keep, keep_series } => {
                let keep: Vec<&str> = keep.iter().map(SessionId::as_str).collect();
                ending_or_bumping!(
                    "DELETE FROM sessions WHERE user_id = $1 AND id <> ALL($2)",
                    "DELETE FROM remember_tokens WHERE user_id = $1 AND selector NOT IN (SELECT series FROM sessions \
                     WHERE id = ANY($2) AND series IS NOT NULL) AND selector IS DISTINCT FROM $3 RETURNING selector",
                    "$1"
                )
                .bind(user.as_str())
                .bind(keep)
                .bind(keep_series)
            }
            SessionFilter::Expired { user, now, idle_cutoff } => ending_or_bumping!(
                "DELETE FROM sessions WHERE user_id = $3 AND (expires_at <= $1 OR last_active_at <= $2)",
                "SELECT NULL::text AS selector WHERE FALSE",
                "$3"
            )
            .bind(ms(now))
            .bind(ms(idle_cutoff))
            .bind(user.as_str()),
            SessionFilter::OldestBeyond { user, keep, spare } => ending_or_bumping!(
                "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2 \
                 ORDER BY created_at DESC, id OFFSET $3)",
                "DELETE FROM remember_tokens WHERE session_id IN (SELECT id FROM gone) RETURNING selector",
                "$1"
            )
            .bind(user.as_str())
            .bind(spare.as_str())
            .bind(i64::from(keep.saturating_sub(1))),
        };
        self.ended_by(query).await
    }
}
