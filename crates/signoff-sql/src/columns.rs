//! The core records as rows of the SQL stores' shared schema (SQLite and PostgreSQL name and
//! type their columns alike), read once here for every store. A store only says how to read
//! one column of its row type ([`Columns`]); times are Unix milliseconds, hashes 32 bytes.
//! Strings name columns, never carry data into SQL.

use time::OffsetDateTime;

use signoff_core::audit::{Actor, AuditEvent, AuditKind};
use signoff_core::clients::{ClientProfile, Endpoint, EndpointKind, RegisteredClient, SigningAlg};
use signoff_core::feed::{FeedEntry, Revocation};
use signoff_core::mail::{MailPurpose, MailToken};
use signoff_core::outbox::{Delivery, DeliveryKind, DeliveryStatus};
use signoff_core::secret::{SecretHash, SessionId, SigninId, UserId};
use signoff_core::signals::{DeliveryMethod, SignalStream, StreamStatus};
use signoff_core::store::{
    AuthorizationCode, CodeIssue, CodeUse, FeedPage, RefreshToken, RememberToken, Session, StoreError, User,
    UserCredentials,
};
use signoff_core::token::SigningKeyPair;

/// One row of a store's driver: its columns by name, `None` for SQL `NULL`.
pub trait Columns {
    fn text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<Option<i64>, StoreError>;
    fn bytes(&self, col: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A boolean (SQLite keeps it as an integer, PostgreSQL as `BOOLEAN`).
    fn flag(&self, col: &str) -> Result<Option<bool>, StoreError>;
}

/// A value read from one column.
pub trait FromColumn: Sized {
    fn from_column(row: &impl Columns, col: &str) -> Result<Self, StoreError>;
}

fn required<T>(value: Option<T>, col: &str) -> Result<T, StoreError> {
    value.ok_or_else(|| backend(format!("{col} is NULL")))
}

macro_rules! from_column {
    ($t:ty, $method:ident) => {
        impl FromColumn for Option<$t> {
            fn from_column(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
                row.$method(col)
            }
        }
        impl FromColumn for $t {
            fn from_column(row: &impl Columns, col: &str) -> Result<Self, StoreError> {
                required(row.$method(col)?, col)
            }
        }
    };
}
from_column!(String, text);
from_column!(i64, int);
from_column!(Vec<u8>, bytes);
from_column!(bool, flag);

fn get<T: FromColumn>(row: &impl Columns, col: &str) -> Result<T, StoreError> {
    T::from_column(row, col)
}

pub fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub fn ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_ms(v: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(v as i128 * 1_000_000).map_err(backend)
}

fn hash(row: &impl Columns, col: &str) -> Result<SecretHash, StoreError> {
    let bytes: Vec<u8> = get(row, col)?;
    SecretHash::from_slice(&bytes).ok_or_else(|| backend(format!("corrupt hash in {col}")))
}

pub fn mail_token_from(row: &impl Columns) -> Result<MailToken, StoreError> {
    let purpose: String = get(row, "purpose")?;
    Ok(MailToken {
        hash: hash(row, "token_hash")?,
        purpose: MailPurpose::parse(&purpose).ok_or_else(|| backend(format!("unknown mail purpose {purpose}")))?,
        user_id: UserId::from_string(get(row, "user_id")?),
        new_email: get(row, "new_email")?,
        fingerprint: hash(row, "fingerprint")?,
        request: match get::<Option<Vec<u8>>>(row, "request")? {
            Some(bytes) => Some(SecretHash::from_slice(&bytes).ok_or_else(|| backend("corrupt request id"))?),
            None => None,
        },
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        used_at: get::<Option<i64>>(row, "used_at")?.map(from_ms).transpose()?,
    })
}

pub fn session_from(row: &impl Columns) -> Result<Session, StoreError> {
    let id: String = get(row, "id")?;
    // NULL: written by a node of the previous release; a sign-in of its own (see the migration).
    let signin = get::<Option<String>>(row, "signin_id")?.unwrap_or_else(|| id.clone());
    let created_at = from_ms(get(row, "created_at")?)?;
    Ok(Session {
        signin: SigninId::from_string(signin),
        authenticated_at: get::<Option<i64>>(row, "authenticated_at")?.map(from_ms).transpose()?.unwrap_or(created_at),
        id: SessionId::from_string(id),
        user_id: UserId::from_string(get(row, "user_id")?),
        secret_hash: hash(row, "secret_hash")?,
        created_at,
        last_active_at: from_ms(get(row, "last_active_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
        series: get(row, "series")?,
    })
}

pub fn user_from(row: &impl Columns) -> Result<UserCredentials, StoreError> {
    Ok(UserCredentials {
        user: User {
            id: UserId::from_string(get(row, "u_id")?),
            email: get(row, "email")?,
            token_version: get(row, "token_version")?,
            created_at: from_ms(get(row, "u_created_at")?)?,
        },
        password_hash: get(row, "password_hash")?,
    })
}

pub fn remember_from(row: &impl Columns) -> Result<RememberToken, StoreError> {
    let previous: Option<Vec<u8>> = get(row, "previous_hash")?;
    let rotated_at: Option<i64> = get(row, "rotated_at")?;
    let session_id: String = get(row, "session_id")?;
    let signin = get::<Option<String>>(row, "signin_id")?.unwrap_or_else(|| session_id.clone());
    Ok(RememberToken {
        signin: SigninId::from_string(signin),
        selector: get(row, "selector")?,
        validator_hash: hash(row, "validator_hash")?,
        previous_hash: previous.as_deref().and_then(SecretHash::from_slice),
        rotated_at: rotated_at.map(from_ms).transpose()?,
        user_id: UserId::from_string(get(row, "user_id")?),
        session_id: SessionId::from_string(session_id),
        created_at: from_ms(get(row, "created_at")?)?,
        expires_at: from_ms(get(row, "expires_at")?)?,
        grace_used: get(row, "grace_used")?,
        ip: get(row, "ip")?,
        user_agent: get(row, "user_agent")?,
    })
}

pub fn audit_from(r: &impl Columns) -> Result<AuditEvent, StoreError> {
    let kind: String = get(r, "kind")?;
    let actor: String = get(r, "actor")?;
    Ok(AuditEvent {
        kind: AuditKind::parse(&kind).ok_or_else(|| backend(format!("unknown audit kind {kind}")))?,
        at: from_ms(get(r, "at")?)?,
        user_id: get::<Option<String>>(r, "user_id")?.map(UserId::from_string),
        session_id: get::<Option<String>>(r, "session_id")?.map(SessionId::from_string),
        scope: get(r, "scope")?,
        reason: get(r, "reason")?,
        detail: get(r, "detail")?,
        actor: Actor::parse(&actor).ok_or_else(|| backend(format!("unknown actor {actor}")))?,
        ip: get(r, "ip")?,
        user_agent: get(r, "user_agent")?,
    })
}

/// A [`FeedPage`] from the rows of a read of the head (`head`) beside a page of entries: the
/// entry's `seq` is NULL on the one row a read with no entries returns.
pub fn feed_page_from<R: Columns>(rows: impl IntoIterator<Item = R>) -> Result<FeedPage, StoreError> {
    let mut head = None;
    let mut entries = Vec::new();
    for r in rows {
        if head.is_none() {
            head = Some(get::<i64>(&r, "head")?);
        }
        if get::<Option<i64>>(&r, "seq")?.is_some() {
            entries.push(feed_from(&r)?);
        }
    }
    Ok(FeedPage { head: head.ok_or_else(|| backend("a read of the feed returned no head"))?, entries })
}

pub fn feed_from(r: &impl Columns) -> Result<(i64, FeedEntry), StoreError> {
    let kind: String = get(r, "kind")?;
    let subject: String = get(r, "subject")?;
    let value: Option<i64> = get(r, "value")?;
    let entry = match kind.as_str() {
        "session" => FeedEntry::Session(Revocation {
            session_id: SessionId::from_string(subject),
            user_id: UserId::from_string(get::<Option<String>>(r, "user_id")?.unwrap_or_default()),
            reason: get::<Option<String>>(r, "reason")?.unwrap_or_default(),
            at: from_ms(get(r, "at")?)?,
        }),
        "token" => FeedEntry::Token {
            issuer: get::<Option<String>>(r, "issuer")?.unwrap_or_default(),
            jti: subject,
            exp: value.unwrap_or_default(),
            user_id: get::<Option<String>>(r, "user_id")?.map(UserId::from_string),
        },
        "token_version" => {
            FeedEntry::TokenVersion { user_id: UserId::from_string(subject), version: value.unwrap_or_default() }
        }
        "keys" => FeedEntry::Keys {
            kid: subject,
            withdrawn: get::<Option<String>>(r, "reason")?.as_deref() == Some("withdrawn"),
        },
        "client_removed" => FeedEntry::ClientRemoved { client_id: subject },
        // Whose grant (`subject`, as for a removed client) and the grant's id (`next`).
        "client_grant" => FeedEntry::ClientGrantEnded {
            sid: SessionId::from_string(get::<Option<String>>(r, "next")?.unwrap_or_default()),
            client_id: subject,
            reason: get::<Option<String>>(r, "reason")?.unwrap_or_default(),
        },
        "rekeyed" => FeedEntry::Rekeyed {
            old: SessionId::from_string(subject),
            new: SessionId::from_string(get::<Option<String>>(r, "next")?.unwrap_or_default()),
            user_id: get::<Option<String>>(r, "user_id")?.map(UserId::from_string),
            reason: get(r, "reason")?,
        },
        other => FeedEntry::Unknown { kind: other.to_owned() },
    };
    Ok((get(r, "seq")?, entry))
}

/// A feed entry as a row of `revocations` (times in Unix milliseconds); `None` for an entry of
/// a kind this version does not know, which is never written back.
#[derive(Debug, Clone, Copy)]
pub struct FeedRow<'a> {
    pub kind: &'static str,
    pub subject: &'a str,
    pub user_id: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub reason: Option<&'a str>,
    pub value: Option<i64>,
    pub at: i64,
    pub next: Option<&'a str>,
}

/// The row of `e`; `at` dates the entries that carry no time of their own.
pub fn feed_row(e: &FeedEntry, at: OffsetDateTime) -> Option<FeedRow<'_>> {
    let row = |kind, subject| FeedRow {
        kind,
        subject,
        user_id: None,
        issuer: None,
        reason: None,
        value: None,
        at: ms(at),
        next: None,
    };
    Some(match e {
        FeedEntry::Session(r) => FeedRow {
            user_id: Some(r.user_id.as_str()),
            reason: Some(r.reason.as_str()),
            at: ms(r.at),
            ..row("session", r.session_id.as_str())
        },
        FeedEntry::Token { issuer, jti, exp, user_id } => FeedRow {
            issuer: Some(issuer.as_str()),
            value: Some(*exp),
            user_id: user_id.as_ref().map(UserId::as_str),
            ..row("token", jti.as_str())
        },
        FeedEntry::TokenVersion { user_id, version } => {
            FeedRow { user_id: Some(user_id.as_str()), value: Some(*version), ..row("token_version", user_id.as_str()) }
        }
        FeedEntry::Keys { kid, withdrawn } => {
            FeedRow { reason: withdrawn.then_some("withdrawn"), ..row("keys", kid.as_str()) }
        }
        FeedEntry::ClientRemoved { client_id } => row("client_removed", client_id.as_str()),
        FeedEntry::ClientGrantEnded { sid, client_id, reason } => FeedRow {
            next: Some(sid.as_str()),
            reason: Some(reason.as_str()),
            ..row("client_grant", client_id.as_str())
        },
        FeedEntry::Rekeyed { old, new, user_id, reason } => FeedRow {
            next: Some(new.as_str()),
            user_id: user_id.as_ref().map(UserId::as_str),
            reason: reason.as_deref(),
            ..row("rekeyed", old.as_str())
        },
        FeedEntry::Unknown { .. } => return None,
    })
}

pub fn refresh_from(r: &impl Columns) -> Result<RefreshToken, StoreError> {
    Ok(RefreshToken {
        id: get(r, "id")?,
        token_hash: hash(r, "token_hash")?,
        family_id: get(r, "family_id")?,
        session_id: SessionId::from_string(get(r, "session_id")?),
        user_id: UserId::from_string(get(r, "user_id")?),
        created_at: from_ms(get(r, "created_at")?)?,
        expires_at: from_ms(get(r, "expires_at")?)?,
        used_at: get::<Option<i64>>(r, "used_at")?.map(from_ms).transpose()?,
        replaced_by: get(r, "replaced_by")?,
        successor_salt: get::<Option<Vec<u8>>>(r, "successor_salt")?.and_then(|s| s.try_into().ok()),
        grace_used: get(r, "grace_used")?,
        client_id: get(r, "client_id")?,
    })
}

/// A row of [`SELECT_SIGNING_KEYS`].
pub fn signing_key_from(r: &impl Columns) -> Result<SigningKeyPair, StoreError> {
    let alg: String = get(r, "alg")?;
    let alg = SigningAlg::parse(&alg).ok_or_else(|| backend("a signing key of an unknown algorithm"))?;
    let private: Vec<u8> = get(r, "private_key")?;
    SigningKeyPair::from_parts(
        get(r, "kid")?,
        alg,
        &private,
        from_ms(get(r, "created_at")?)?,
        get::<Option<i64>>(r, "retired_at")?.map(from_ms).transpose()?,
    )
    .map_err(|e| backend(format!("corrupt signing key: {e}")))
}

/// Every signing key (both dialects): the Ed25519 ones of `signing_keys` and the others of
/// `jws_keys` (see its migration for why there are two tables).
pub const SELECT_SIGNING_KEYS: &str = "SELECT kid, 'EdDSA' AS alg, private_key, created_at, retired_at FROM signing_keys \
     UNION ALL SELECT kid, alg, private_key, created_at, retired_at FROM jws_keys";

/// The start of every read of clients (both dialects): a row per client and endpoint, with
/// `NULL` endpoint columns for a client with none. Append a `WHERE` on `c.` columns, then
/// [`CLIENTS_ORDER`], and read the rows with [`clients_from`].
#[macro_export]
macro_rules! select_clients {
    () => {
        concat!(
            "SELECT ",
            $crate::client_columns!(),
            " FROM clients c LEFT JOIN client_endpoints e ON e.client_id = c.id"
        )
    };
}

/// The columns of [`select_clients!`], in its order (`c` the client, `e` the endpoint).
#[macro_export]
macro_rules! client_columns {
    () => {
        "c.id, c.name, c.secret_hash, c.backchannel_logout_uri, c.webhook_url, c.webhook_secret, \
         c.previous_webhook_secret, c.previous_webhook_secret_until, c.created_at, c.profile, \
         e.kind AS endpoint_kind, e.url AS endpoint_url"
    };
}

/// The order of a read of clients: oldest first, a client's rows together.
#[macro_export]
macro_rules! clients_order {
    () => {
        " ORDER BY c.created_at, c.id"
    };
}

/// The endpoints of one client, each a row of `client_endpoints` (`client_id`, `kind`, `url`).
pub fn endpoint_rows(client: &RegisteredClient) -> impl Iterator<Item = (&str, &'static str, &str)> {
    client.endpoints.iter().map(|e| (client.id.as_str(), e.kind.as_str(), e.url.as_str()))
}

/// The columns the endpoint rows replaced, still written for nodes of the previous release
/// (`backchannel_logout_uri`, `webhook_url`).
pub fn legacy_endpoint_columns(client: &RegisteredClient) -> (Option<&str>, Option<&str>) {
    (client.endpoint(EndpointKind::BackchannelLogout), client.endpoint(EndpointKind::Webhook))
}

/// The kinds whose URL the previous release kept in a column of `clients`, with that column.
/// While the columns are written (for nodes of that release during a rolling upgrade), each is
/// what says whether its kind is there: an old node registers a client in the column alone, and
/// drops a URL that answered `410 Gone` from the column alone.
const LEGACY_COLUMNS: [(EndpointKind, &str); 2] =
    [(EndpointKind::BackchannelLogout, "backchannel_logout_uri"), (EndpointKind::Webhook, "webhook_url")];

/// Registered clients from the rows of a [`select_clients!`] read in [`clients_order!`]. An
/// endpoint kind this release does not know (a newer node's) is left out. A kind of
/// [`LEGACY_COLUMNS`] is there only while its column is set: its rows when it has any, else
/// the column's URL (a client a node of the previous release registered).
pub fn clients_from<R: Columns>(rows: impl IntoIterator<Item = R>) -> Result<Vec<RegisteredClient>, StoreError> {
    let mut out: Vec<RegisteredClient> = Vec::new();
    let mut legacy: Vec<Vec<(EndpointKind, Option<String>)>> = Vec::new();
    for r in rows {
        let id: String = get(&r, "id")?;
        if out.last().is_none_or(|c| c.id != id) {
            let columns = LEGACY_COLUMNS.iter().map(|(kind, col)| Ok((*kind, get::<Option<String>>(&r, col)?)));
            legacy.push(columns.collect::<Result<_, StoreError>>()?);
            out.push(client_from(&r)?);
        }
        let (kind, url): (Option<String>, Option<String>) = (get(&r, "endpoint_kind")?, get(&r, "endpoint_url")?);
        if let (Some(kind), Some(url), Some(client)) =
            (kind.as_deref().and_then(EndpointKind::parse), url, out.last_mut())
        {
            client.endpoints.push(Endpoint { kind, url });
        }
    }
    for (client, columns) in out.iter_mut().zip(legacy) {
        for (kind, column) in columns {
            match column {
                None => client.endpoints.retain(|e| e.kind != kind),
                Some(url) if client.endpoint(kind).is_none() => client.endpoints.push(Endpoint { kind, url }),
                Some(_) => {}
            }
        }
        client.endpoints.sort();
    }
    Ok(out)
}

fn client_from(r: &impl Columns) -> Result<RegisteredClient, StoreError> {
    let id: String = get(r, "id")?;
    let profile = match get::<Option<String>>(r, "profile")? {
        // Registered before profiles were kept: it signs nobody in.
        None => ClientProfile::service(),
        // One this release cannot read (a newer node's, during a rolling upgrade): read as a
        // service's, so the client signs nobody in here (closed), while every logout, which
        // reads all clients, goes on.
        Some(text) => ClientProfile::from_json(&text).unwrap_or_else(|| {
            tracing::warn!(client_id = %id, "a client's stored profile is not one this release reads; it signs nobody in on this node");
            ClientProfile::service()
        }),
    };
    Ok(RegisteredClient {
        profile,
        id,
        name: get(r, "name")?,
        secret_hash: hash(r, "secret_hash")?,
        endpoints: Vec::new(),
        webhook_secret: get(r, "webhook_secret")?,
        previous_webhook_secret: get(r, "previous_webhook_secret")?,
        previous_webhook_secret_until: get::<Option<i64>>(r, "previous_webhook_secret_until")?
            .map(from_ms)
            .transpose()?,
        created_at: from_ms(get(r, "created_at")?)?,
    })
}

pub fn delivery_from(r: &impl Columns) -> Result<Delivery, StoreError> {
    let kind: String = get(r, "kind")?;
    let status: String = get(r, "status")?;
    Ok(Delivery {
        id: get(r, "id")?,
        client_id: get(r, "client_id")?,
        kind: DeliveryKind::parse(&kind).ok_or_else(|| backend(format!("unknown delivery kind {kind}")))?,
        event: get(r, "event")?,
        url: get(r, "url")?,
        payload: get(r, "payload")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| backend(format!("unknown delivery status {status}")))?,
        attempts: get(r, "attempts")?,
        last_status_code: get(r, "last_status_code")?,
        last_error: get(r, "last_error")?,
        next_attempt_at: from_ms(get(r, "next_attempt_at")?)?,
        created_at: from_ms(get(r, "created_at")?)?,
        claim: get(r, "claim_token")?,
    })
}

/// The columns of an authorization code, in the order [`code_from`] and the inserts use.
#[macro_export]
macro_rules! code_columns {
    () => {
        "code_hash, client_id, redirect_uri, user_id, session_id, signin_id, code_challenge, nonce, auth_time, \
         created_at, expires_at"
    };
}

pub fn code_from(r: &impl Columns) -> Result<AuthorizationCode, StoreError> {
    Ok(AuthorizationCode {
        code_hash: hash(r, "code_hash")?,
        client_id: get(r, "client_id")?,
        redirect_uri: get(r, "redirect_uri")?,
        user_id: UserId::from_string(get(r, "user_id")?),
        session_id: SessionId::from_string(get(r, "session_id")?),
        signin: SigninId::from_string(get(r, "signin_id")?),
        code_challenge: get(r, "code_challenge")?,
        nonce: get(r, "nonce")?,
        auth_time: from_ms(get(r, "auth_time")?)?,
        created_at: from_ms(get(r, "created_at")?)?,
        expires_at: from_ms(get(r, "expires_at")?)?,
    })
}

/// A spent code's row (`user_id, issued_family, issued_jti, issued_exp`) as [`CodeUse::Again`].
pub fn spent_code_from(r: &impl Columns) -> Result<CodeUse, StoreError> {
    let jti: Option<String> = get(r, "issued_jti")?;
    let exp: Option<i64> = get(r, "issued_exp")?;
    let issued = match (jti, exp) {
        (Some(access_jti), Some(access_exp)) => {
            Some(CodeIssue { family: get(r, "issued_family")?, access_jti, access_exp })
        }
        _ => None,
    };
    Ok(CodeUse::Again { user_id: UserId::from_string(get(r, "user_id")?), issued })
}

/// The columns of a Shared Signals stream, in the order [`signal_stream_row`] gives its values.
#[macro_export]
macro_rules! signal_stream_columns {
    () => {
        "id, client_id, description, events_requested, delivery_method, endpoint_url, authorization_header, \
         status, reason, excluded_subjects, created_at, updated_at, version"
    };
}

/// A list kept as a JSON array of strings.
fn string_list(r: &impl Columns, col: &str) -> Result<Vec<String>, StoreError> {
    let text: String = get(r, col)?;
    serde_json::from_str(&text).map_err(|_| backend(format!("{col} is not a JSON array of strings")))
}

fn list_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| unreachable!("a list of strings always serialises"))
}

pub fn signal_stream_from(r: &impl Columns) -> Result<SignalStream, StoreError> {
    let method: String = get(r, "delivery_method")?;
    let status: String = get(r, "status")?;
    Ok(SignalStream {
        id: get(r, "id")?,
        client_id: get(r, "client_id")?,
        description: get(r, "description")?,
        events_requested: string_list(r, "events_requested")?,
        method: DeliveryMethod::parse(&method).ok_or_else(|| backend(format!("unknown delivery method {method}")))?,
        endpoint_url: get(r, "endpoint_url")?,
        authorization_header: get(r, "authorization_header")?,
        status: StreamStatus::parse(&status).ok_or_else(|| backend(format!("unknown stream status {status}")))?,
        reason: get(r, "reason")?,
        excluded_subjects: string_list(r, "excluded_subjects")?,
        created_at: from_ms(get(r, "created_at")?)?,
        updated_at: from_ms(get(r, "updated_at")?)?,
        version: get(r, "version")?,
    })
}

/// A stream's values that are not plain columns of it: its lists as JSON, its kinds as text.
pub struct SignalStreamRow {
    pub events_requested: String,
    pub method: &'static str,
    pub status: &'static str,
    pub excluded_subjects: String,
    pub created_at: i64,
    pub updated_at: i64,
}

pub fn signal_stream_row(s: &SignalStream) -> SignalStreamRow {
    SignalStreamRow {
        events_requested: list_json(&s.events_requested),
        method: s.method.as_str(),
        status: s.status.as_str(),
        excluded_subjects: list_json(&s.excluded_subjects),
        created_at: ms(s.created_at),
        updated_at: ms(s.updated_at),
    }
}

/// An upstream Shared Signals transmitter (its secret's hash kept as hex text).
pub fn signal_upstream_from(r: &impl Columns) -> Result<signoff_core::signals::upstream::Upstream, StoreError> {
    let hex: String = get(r, "secret_hash")?;
    Ok(signoff_core::signals::upstream::Upstream {
        id: get(r, "id")?,
        issuer: get(r, "issuer")?,
        jwks_uri: get(r, "jwks_uri")?,
        audience: get(r, "audience")?,
        secret_hash: SecretHash::from_hex(&hex).ok_or_else(|| backend("corrupt hash in secret_hash"))?,
        created_at: from_ms(get(r, "created_at")?)?,
    })
}
