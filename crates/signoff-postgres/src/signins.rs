//! Authorization codes and sign-in links on PostgreSQL: [`signoff_core::store::SigninStore`] and
//! [`signoff_core::store::SigninTx`].

use crate::rows::{backend, clients_from, code_from, db_err, ms, signal_stream_from, spent_code_from};
use crate::{PgStore, PgTx};
use async_trait::async_trait;
use signoff_core::clients::RegisteredClient;
use signoff_core::secret::{SecretHash, SigninId, UserId};
use signoff_core::store::{AuthorizationCode, CodeIssue, CodeUse, Recipients, SigninStore, SigninTx, StoreError};
use signoff_sql::code_columns;
use sqlx::Row as _;
use time::OffsetDateTime;

#[async_trait]
impl SigninStore for PgStore {
    async fn code_user(&self, hash: &SecretHash) -> Result<Option<UserId>, StoreError> {
        let user: Option<String> = sqlx::query_scalar("SELECT user_id FROM authorization_codes WHERE code_hash = $1")
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(user.map(UserId::from_string))
    }
    async fn signin_clients(&self, signin: &SigninId) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT client_id FROM signin_clients WHERE signin_id = $1 ORDER BY created_at, client_id")
            .bind(signin.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)
    }
}

#[async_trait]
impl SigninTx for PgTx {
    async fn hold_client(&mut self, client_id: &str) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM clients WHERE id = $1 FOR SHARE")
            .bind(client_id)
            .fetch_optional(self.conn())
            .await
            .map_err(db_err)?;
        Ok(found.is_some())
    }
    async fn insert_code(&mut self, c: &AuthorizationCode) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO authorization_codes (",
            code_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
        .bind(&c.code_hash.0[..])
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(c.user_id.as_str())
        .bind(c.session_id.as_str())
        .bind(c.signin.as_str())
        .bind(&c.code_challenge)
        .bind(c.nonce.as_deref())
        .bind(ms(c.auth_time))
        .bind(ms(c.created_at))
        .bind(ms(c.expires_at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn use_code(&mut self, hash: &SecretHash, now: OffsetDateTime) -> Result<CodeUse, StoreError> {
        // The compare-and-swap: of two uses (on any nodes) one finds it unspent.
        let query = sqlx::query(concat!(
            "UPDATE authorization_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL \
             AND expires_at > $1 RETURNING ",
            code_columns!()
        ))
        .bind(ms(now))
        .bind(&hash.0[..]);

        if let Some(row) = query.fetch_optional(self.conn()).await.map_err(db_err)? {
            return Ok(CodeUse::First(code_from(&row)?));
        }
        let spent = sqlx::query(
            "SELECT user_id, issued_family, issued_jti, issued_exp FROM authorization_codes \
             WHERE code_hash = $1 AND used_at IS NOT NULL FOR UPDATE",
        )
        .bind(&hash.0[..])
        .fetch_optional(self.conn())
        .await
        .map_err(db_err)?;
        spent.as_ref().map_or(Ok(CodeUse::Unknown), spent_code_from)
    }
    async fn record_code_issue(&mut self, hash: &SecretHash, issue: &CodeIssue) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE authorization_codes SET issued_family = $1, issued_jti = $2, issued_exp = $3 \
             WHERE code_hash = $4",
        )
        .bind(issue.family.as_deref())
        .bind(&issue.access_jti)
        .bind(issue.access_exp)
        .bind(&hash.0[..])
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn prune_codes(&mut self, before: OffsetDateTime) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM authorization_codes WHERE expires_at < $1")
            .bind(ms(before))
            .execute(self.conn())
            .await
            .map_err(db_err)?;
        Ok(done.rows_affected())
    }
    async fn link_signin(
        &mut self,
        signin: &SigninId,
        client_id: &str,
        user: &UserId,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO signin_clients (signin_id, client_id, user_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (signin_id, client_id) DO NOTHING",
        )
        .bind(signin.as_str())
        .bind(client_id)
        .bind(user.as_str())
        .bind(ms(at))
        .execute(self.conn())
        .await
        .map_err(db_err)?;
        Ok(())
    }
    async fn signin_clients(&mut self, signin: &SigninId) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar("SELECT client_id FROM signin_clients WHERE signin_id = $1 ORDER BY created_at, client_id")
            .bind(signin.as_str())
            .fetch_all(self.conn())
            .await
            .map_err(db_err)
    }
    async fn end_signins(&mut self, users: &[UserId]) -> Result<Vec<(SigninId, UserId, String)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
        let rows: Vec<(String, String, String)> =
            sqlx::query_as(end_signins_delete!()).bind(&ids).fetch_all(self.conn()).await.map_err(db_err)?;
        Ok(rows.into_iter().map(|(s, u, c)| (SigninId::from_string(s), UserId::from_string(u), c)).collect())
    }
}

/// [`Tx::end_signins_and_read_recipients`](signoff_core::store::Tx::end_signins_and_read_recipients)
/// as one statement: the sign-ins' links deleted (as `end_signins`), then three kinds of rows
/// in one result, told apart by `part` (1 an ended link, 2 a client and endpoint as
/// `select_clients!` reads them, 3 a live stream as `signal_stream_columns!` reads them). Each
/// part's columns are where the first branch (the clients') names them; the others fill the
/// rest with `NULL`, and the columns both name share a place (`id`, `created_at`,
/// `endpoint_url`; `client_id` of a link and of a stream). The store conformance rule
/// `a_batch_reads_its_recipients_as_the_three_calls_would` compares it with the three reads.
const RECIPIENTS: &str = concat!(
    "WITH ended AS (",
    end_signins_delete!(),
    ") SELECT 2 AS part, NULL::text AS signin_id, NULL::text AS user_id, ",
    signoff_sql::client_columns!(),
    ", NULL::text AS client_id, NULL::text AS description, NULL::text AS events_requested, \
     NULL::text AS delivery_method, NULL::text AS authorization_header, NULL::text AS status, NULL::text AS reason, \
     NULL::text AS excluded_subjects, NULL::bigint AS updated_at, NULL::bigint AS version \
     FROM clients c LEFT JOIN client_endpoints e ON e.client_id = c.id \
     WHERE ($2 OR EXISTS (SELECT 1 FROM ended)) AND ",
    has_callback!(),
    " UNION ALL SELECT 1, signin_id, user_id, NULL::text, NULL::text, NULL::bytea, NULL::text, NULL::text, \
     NULL::text, NULL::text, NULL::bigint, NULL::bigint, NULL::text, NULL::text, NULL::text, client_id, NULL::text, \
     NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint FROM ended \
     UNION ALL SELECT 3, NULL::text, NULL::text, id, NULL::text, NULL::bytea, NULL::text, NULL::text, NULL::text, \
     NULL::text, NULL::bigint, created_at, NULL::text, NULL::text, endpoint_url, client_id, description, \
     events_requested, delivery_method, authorization_header, status, reason, excluded_subjects, updated_at, version \
     FROM signal_streams WHERE $3 AND ",
    live_stream!(),
    " ORDER BY part, created_at, id"
);

impl PgTx {
    /// See [`RECIPIENTS`].
    pub(crate) async fn end_signins_and_read_recipients(
        &mut self,
        users: &[UserId],
        clients: bool,
        streams: bool,
    ) -> Result<Recipients, StoreError> {
        let ids: Vec<&str> = users.iter().map(UserId::as_str).collect();
        let rows = sqlx::query(RECIPIENTS)
            .bind(&ids)
            .bind(clients)
            .bind(streams)
            .fetch_all(self.conn())
            .await
            .map_err(db_err)?;
        let mut out = Recipients::default();
        let (mut client_rows, mut stream_rows) = (Vec::new(), Vec::new());
        for row in rows {
            match row.try_get::<i32, _>("part").map_err(backend)? {
                1 => {
                    let text = |col: &str| row.try_get::<String, _>(col).map_err(backend);
                    out.signins_ended.push((
                        SigninId::from_string(text("signin_id")?),
                        UserId::from_string(text("user_id")?),
                        text("client_id")?,
                    ));
                }
                2 => client_rows.push(row),
                3 => stream_rows.push(row),
                other => return Err(backend(format!("a row of part {other} among a batch's recipients"))),
            }
        }
        out.clients = clients_from(&client_rows)?.into_iter().filter(RegisteredClient::has_callbacks).collect();
        out.streams = stream_rows.iter().map(signal_stream_from).collect::<Result<_, _>>()?;
        Ok(out)
    }
}
