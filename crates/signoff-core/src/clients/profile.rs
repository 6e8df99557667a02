//! What a client registered beyond its secret and URLs, under the names of OpenID Connect
//! Dynamic Client Registration 1.0 (§2) and its logout extensions: which grants it uses, how it
//! authenticates at the token endpoint, how its ID tokens are signed (and, once ID tokens are
//! served, its logout tokens; until then every logout token is EdDSA, as before). Stored whole
//! with the client, as JSON.

use serde::{Deserialize, Serialize};

/// The algorithm a client's ID and logout tokens are signed with (`id_token_signed_response_alg`).
pub use signoff_jwt::keys::Alg as SigningAlg;

/// How a client proves itself at the token endpoint (`token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic with `client_id:client_secret` (the default).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl TokenAuthMethod {
    pub const ALL: [Self; 2] = [Self::ClientSecretBasic, Self::ClientSecretPost];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// A grant a client may use at the token endpoint (`grant_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    AuthorizationCode,
    RefreshToken,
    /// A machine client's own token: no user, no session.
    ClientCredentials,
}

impl GrantType {
    pub const ALL: [Self; 3] = [Self::AuthorizationCode, Self::RefreshToken, Self::ClientCredentials];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// The registration metadata kept with a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientProfile {
    /// Sorted, without repeats.
    pub grant_types: Vec<GrantType>,
    pub token_endpoint_auth_method: TokenAuthMethod,
    pub id_token_signed_response_alg: SigningAlg,
    /// Whether its logout tokens must carry `sid` (they always do).
    pub backchannel_logout_session_required: bool,
    /// Whether its front-channel logout URL is given `iss` and `sid` (it always is).
    pub frontchannel_logout_session_required: bool,
    /// Whether it may end every credential of any user (Global Token Revocation).
    #[serde(default)]
    pub global_token_revocation: bool,
    /// Whether it may receive Shared Signals about every user (configure streams).
    #[serde(default)]
    pub shared_signals: bool,
}

impl ClientProfile {
    /// A client that signs nobody in (a resource server, a feed reader, a webhook receiver), as
    /// every client registered before signoff was an OpenID provider: no grants, Basic
    /// authentication, EdDSA logout tokens.
    pub fn service() -> Self {
        Self {
            grant_types: Vec::new(),
            token_endpoint_auth_method: TokenAuthMethod::ClientSecretBasic,
            id_token_signed_response_alg: SigningAlg::EdDsa,
            backchannel_logout_session_required: true,
            frontchannel_logout_session_required: true,
            global_token_revocation: false,
            shared_signals: false,
        }
    }

    /// A relying party that signs users in with the code flow: RS256, Basic authentication.
    pub fn relying_party() -> Self {
        Self {
            grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            id_token_signed_response_alg: SigningAlg::Rs256,
            ..Self::service()
        }
    }

    /// As stored (`clients.profile`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| unreachable!("a profile always serialises"))
    }

    /// A stored profile; `None` when it is not one (the caller names the client).
    pub fn from_json(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }

    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// Why a redirect URI (or a front-channel logout URI) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("not an absolute URL of printable ASCII with a host (and digits for a port)")]
    Unparsable,
    #[error("must be https, in lower case (http only for a loopback host: localhost, 127.0.0.0/8, [::1])")]
    NotHttps,
    #[error("must not carry a fragment")]
    Fragment,
    #[error("must not carry credentials")]
    Credentials,
}

/// Longest redirect URI kept.
const MAX_URI_LEN: usize = 2048;

/// A URI a browser is sent to: absolute, `https` (plain `http` only on a loopback host, for
/// development), no fragment, no credentials. Only printable ASCII outside the characters a
/// browser reads otherwise than it looks (`\`, `"`, `<`, `>`, `{`, `}`, `|`, `^`, `` ` ``): an
/// international host is given in its `xn--` form, and no URI shows one host and leads to
/// another. The host is a name of letters, digits, `-` and `.`, or an address in brackets; the
/// port digits. Returned as given: redirect URIs are matched exactly, character for character,
/// against what the client sends later.
pub fn check_browser_uri(raw: &str) -> Result<String, RedirectUriError> {
    const MISREAD: &[char] = &['\\', '"', '<', '>', '{', '}', '|', '^', '`'];
    if raw.len() > MAX_URI_LEN || !raw.chars().all(|c| c.is_ascii_graphic() && !MISREAD.contains(&c)) {
        return Err(RedirectUriError::Unparsable);
    }
    let (scheme, rest) = raw.split_once("://").ok_or(RedirectUriError::Unparsable)?;
    if raw.contains('#') {
        return Err(RedirectUriError::Fragment);
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(RedirectUriError::Credentials);
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (address, after) = v6.split_once(']').ok_or(RedirectUriError::Unparsable)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(RedirectUriError::Unparsable)?),
            };
            address.parse::<std::net::Ipv6Addr>().map_err(|_| RedirectUriError::Unparsable)?;
            (format!("[{address}]"), port)
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.to_owned(), None),
        },
    };
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if host.is_empty() || (!host.starts_with('[') && !host.chars().all(name_char)) {
        return Err(RedirectUriError::Unparsable);
    }
    if port.is_some_and(|p| p.is_empty() || p.len() > 5 || !p.chars().all(|c| c.is_ascii_digit())) {
        return Err(RedirectUriError::Unparsable);
    }
    match scheme {
        "https" => Ok(raw.to_owned()),
        "http" if is_loopback_host(&host) => Ok(raw.to_owned()),
        _ => Err(RedirectUriError::NotHttps),
    }
}

/// `localhost`, `[::1]`, or an address of 127.0.0.0/8 in its canonical dotted form (RFC 8252
/// §8.3: apps on one machine on their own loopback addresses are separate sites to a browser).
fn is_loopback_host(host: &str) -> bool {
    matches!(host, "localhost" | "[::1]")
        || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback() && ip.to_string() == host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_uris_are_https_or_loopback_without_fragments_or_credentials() {
        for ok in [
            "https://app.example/cb",
            "https://app.example:8443/cb?x=1",
            "http://localhost:3000/callback",
            "http://127.0.0.1/cb",
            "http://127.0.0.2:8080/cb",
            "http://[::1]:8080/cb",
            "https://xn--bcher-kva.example/cb",
            "https://app.example/cb?next=%2Fhome",
        ] {
            assert_eq!(check_browser_uri(ok).as_deref(), Ok(ok), "{ok}");
        }
        for (bad, why) in [
            ("http://app.example/cb", RedirectUriError::NotHttps),
            ("http://localhost.evil.example/cb", RedirectUriError::NotHttps),
            ("http://127.0.0.1.nip.io/cb", RedirectUriError::NotHttps),
            ("javascript://x/%0aalert(1)", RedirectUriError::NotHttps),
            ("myapp://cb", RedirectUriError::NotHttps),
            ("https://app.example/cb#frag", RedirectUriError::Fragment),
            ("https://user:pw@app.example/cb", RedirectUriError::Credentials),
            ("https://localhost@evil.example/cb", RedirectUriError::Credentials),
            ("/relative/cb", RedirectUriError::Unparsable),
            ("https:///cb", RedirectUriError::Unparsable),
            ("https://app.example/c b", RedirectUriError::Unparsable),
            ("http://LOCALHOST/cb", RedirectUriError::NotHttps),
            ("HTTPS://app.example/cb", RedirectUriError::NotHttps),
            ("https://:443/cb", RedirectUriError::Unparsable),
            ("http://[::1/cb", RedirectUriError::Unparsable),
            ("http://[::1]junk/cb", RedirectUriError::Unparsable),
            ("http://[::1%25lo]/cb", RedirectUriError::Unparsable),
            ("https://evil.example\\.app.example/cb", RedirectUriError::Unparsable),
            ("https://evil%2Eexample/cb", RedirectUriError::Unparsable),
            ("https://app.example:/cb", RedirectUriError::Unparsable),
            ("https://app.example:80a/cb", RedirectUriError::Unparsable),
            ("https://bücher.example/cb", RedirectUriError::Unparsable),
            ("https://app.example/\u{200b}cb", RedirectUriError::Unparsable),
            ("https://app.example/<script>", RedirectUriError::Unparsable),
            ("http://127.0.0.1:80@evil.example/cb", RedirectUriError::Credentials),
            ("http://localhost./cb", RedirectUriError::NotHttps),
            ("http://127.1/cb", RedirectUriError::NotHttps),
            ("http://127.000.0.1/cb", RedirectUriError::NotHttps),
            ("http://128.0.0.1/cb", RedirectUriError::NotHttps),
            ("http://10.0.0.1/cb", RedirectUriError::NotHttps),
        ] {
            assert_eq!(check_browser_uri(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn profiles_round_trip_under_their_registration_names() {
        let mut p = ClientProfile::relying_party();
        p.token_endpoint_auth_method = TokenAuthMethod::ClientSecretPost;
        let json = p.to_json();
        assert!(
            json.contains("\"RS256\"")
                && json.contains("\"client_secret_post\"")
                && json.contains("\"authorization_code\""),
            "{json}"
        );
        assert_eq!(ClientProfile::from_json(&json), Some(p));
        assert_eq!(ClientProfile::from_json("{}"), None);
        for a in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(a.as_str()), Some(a));
        }
        assert_eq!(SigningAlg::parse("none"), None);
        assert_eq!(SigningAlg::parse("HS256"), None);
    }
}
