//! Subject identifiers for security events (RFC 9493): how another system names a user to
//! signoff (Global Token Revocation, Shared Signals) and how signoff names one to it.
//!
//! Each format has exactly its members, each a string (`aliases` holds identifiers of other
//! formats): a member missing, extra or of another type is refused, as RFC 9493 asks.

use serde_json::{Map, Value};

use crate::email;

/// The formats read here (RFC 9493 §3.2 and the Shared Signals additions signoff can resolve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectId {
    /// `{"format": "email", "email": …}`.
    Email(String),
    /// `{"format": "iss_sub", "iss": …, "sub": …}`.
    IssSub {
        iss: String,
        sub: String,
    },
    /// `{"format": "opaque", "id": …}`: for signoff, a user id.
    Opaque(String),
    /// `{"format": "account", "uri": "acct:…"}`.
    Account(String),
    /// `{"format": "phone_number", "phone_number": …}`: read, never resolved (signoff keeps no
    /// phone numbers).
    PhoneNumber(String),
    /// `{"format": "did", "url": …}` and `{"format": "uri", "uri": …}`: read, never resolved.
    Did(String),
    Uri(String),
    /// `{"format": "aliases", "identifiers": [...]}`: one subject under several names.
    Aliases(Vec<SubjectId>),
}

/// Why a subject identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubjectError {
    #[error("a subject identifier is a JSON object with a \"format\"")]
    NotAnObject,
    #[error("the subject format {0:?} is not one signoff reads")]
    UnknownFormat(String),
    #[error("a {format:?} subject has exactly the members {members}, each a string")]
    Members { format: &'static str, members: &'static str },
    #[error("an \"aliases\" subject lists 1 to 16 identifiers of other formats")]
    Aliases,
}

/// A user as a subject names them, once it is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    /// By a (normalised) e-mail address.
    Email(String),
    /// By signoff's user id.
    Id(String),
}

const MAX_ALIASES: usize = 16;

fn members<const N: usize>(
    object: &Map<String, Value>,
    format: &'static str,
    names: [&'static str; N],
    listed: &'static str,
) -> Result<[String; N], SubjectError> {
    let wrong = || SubjectError::Members { format, members: listed };
    if object.len() != N + 1 {
        return Err(wrong());
    }
    let mut out: [String; N] = std::array::from_fn(|_| String::new());
    for (slot, name) in out.iter_mut().zip(names) {
        *slot = object.get(name).and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or_else(wrong)?.to_owned();
    }
    Ok(out)
}

impl SubjectId {
    /// Reads an identifier from its JSON form.
    pub fn from_json(value: &Value) -> Result<Self, SubjectError> {
        Self::read(value, true)
    }

    fn read(value: &Value, nested_ok: bool) -> Result<Self, SubjectError> {
        let object = value.as_object().ok_or(SubjectError::NotAnObject)?;
        let format = object.get("format").and_then(Value::as_str).ok_or(SubjectError::NotAnObject)?;
        Ok(match format {
            "email" => {
                let [email] = members(object, "email", ["email"], "\"email\"")?;
                Self::Email(email)
            }
            "iss_sub" => {
                let [iss, sub] = members(object, "iss_sub", ["iss", "sub"], "\"iss\" and \"sub\"")?;
                Self::IssSub { iss, sub }
            }
            "opaque" => {
                let [id] = members(object, "opaque", ["id"], "\"id\"")?;
                Self::Opaque(id)
            }
            "account" => {
                let [uri] = members(object, "account", ["uri"], "\"uri\" (an acct: URI)")?;
                if !uri.starts_with("acct:") {
                    return Err(SubjectError::Members { format: "account", members: "\"uri\" (an acct: URI)" });
                }
                Self::Account(uri)
            }
            "phone_number" => {
                let [number] = members(object, "phone_number", ["phone_number"], "\"phone_number\"")?;
                Self::PhoneNumber(number)
            }
            "did" => {
                let [url] = members(object, "did", ["url"], "\"url\"")?;
                Self::Did(url)
            }
            "uri" => {
                let [uri] = members(object, "uri", ["uri"], "\"uri\"")?;
                Self::Uri(uri)
            }
            "aliases" if nested_ok => {
                let list = object.get("identifiers").and_then(Value::as_array).ok_or(SubjectError::Aliases)?;
                if object.len() != 2 || list.is_empty() || list.len() > MAX_ALIASES {
                    return Err(SubjectError::Aliases);
                }
                // RFC 9493 §3.2.2: no aliases inside aliases.
                Self::Aliases(list.iter().map(|v| Self::read(v, false)).collect::<Result<_, _>>()?)
            }
            "aliases" => return Err(SubjectError::Aliases),
            other => return Err(SubjectError::UnknownFormat(other.chars().take(40).collect())),
        })
    }

    /// The identifier's JSON form.
    pub fn to_json(&self) -> Value {
        use serde_json::json;
        match self {
            Self::Email(email) => json!({"format": "email", "email": email}),
            Self::IssSub { iss, sub } => json!({"format": "iss_sub", "iss": iss, "sub": sub}),
            Self::Opaque(id) => json!({"format": "opaque", "id": id}),
            Self::Account(uri) => json!({"format": "account", "uri": uri}),
            Self::PhoneNumber(n) => json!({"format": "phone_number", "phone_number": n}),
            Self::Did(url) => json!({"format": "did", "url": url}),
            Self::Uri(uri) => json!({"format": "uri", "uri": uri}),
            Self::Aliases(list) => {
                json!({"format": "aliases", "identifiers": list.iter().map(Self::to_json).collect::<Vec<_>>()})
            }
        }
    }

    /// The keys a subject is remembered by (a stream's removed subjects): `format:value`, an
    /// address as accounts are looked up (an `acct:` URI as its address), one per alias.
    pub fn keys(&self) -> Vec<String> {
        match self {
            Self::Email(address) => vec![format!("email:{}", email::account_key(address))],
            Self::Account(uri) => vec![format!("email:{}", email::account_key(&uri["acct:".len()..]))],
            Self::IssSub { iss, sub } => vec![format!("iss_sub:{}|{sub}", iss.trim_end_matches('/'))],
            Self::Opaque(id) => vec![format!("opaque:{id}")],
            Self::PhoneNumber(n) => vec![format!("phone_number:{n}")],
            Self::Did(url) => vec![format!("did:{url}")],
            Self::Uri(uri) => vec![format!("uri:{uri}")],
            Self::Aliases(list) => list.iter().flat_map(Self::keys).collect(),
        }
    }

    /// Whether its format can name a user here at all (signoff keeps no phone numbers, DIDs or
    /// other URIs of its users).
    pub fn resolvable(&self) -> bool {
        match self {
            Self::Email(_) | Self::IssSub { .. } | Self::Opaque(_) | Self::Account(_) => true,
            Self::PhoneNumber(_) | Self::Did(_) | Self::Uri(_) => false,
            Self::Aliases(list) => list.iter().any(Self::resolvable),
        }
    }

    /// The users this identifier can name here, in the order given: an e-mail address (also
    /// from an `acct:` URI; as accounts are looked up at sign-in, older addresses included), or
    /// a user id (`opaque`, or `iss_sub` with signoff's own issuer). Formats signoff keeps
    /// nothing of name nobody.
    pub fn users(&self, issuer: &str) -> Vec<UserRef> {
        let address = |raw: &str| {
            let key = email::account_key(raw);
            email::is_address_key(&key).then_some(UserRef::Email(key)).into_iter().collect()
        };
        match self {
            Self::Email(raw) => address(raw),
            Self::Account(uri) => address(&uri["acct:".len()..]),
            Self::IssSub { iss, sub } if iss.trim_end_matches('/') == issuer.trim_end_matches('/') => {
                vec![UserRef::Id(sub.clone())]
            }
            Self::Opaque(id) => vec![UserRef::Id(id.clone())],
            Self::Aliases(list) => list.iter().flat_map(|s| s.users(issuer)).collect(),
            Self::IssSub { .. } | Self::PhoneNumber(_) | Self::Did(_) | Self::Uri(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_format_is_read_with_exactly_its_members() {
        let good = [
            json!({"format": "email", "email": "a@example.com"}),
            json!({"format": "iss_sub", "iss": "https://idp.example", "sub": "u1"}),
            json!({"format": "opaque", "id": "u1"}),
            json!({"format": "account", "uri": "acct:a@example.com"}),
            json!({"format": "phone_number", "phone_number": "+12065550100"}),
            json!({"format": "did", "url": "did:example:1"}),
            json!({"format": "uri", "uri": "https://example.com/u/1"}),
            json!({"format": "aliases", "identifiers": [{"format": "email", "email": "a@example.com"}, {"format": "opaque", "id": "u1"}]}),
        ];
        for value in good {
            let read = SubjectId::from_json(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(read.to_json(), value, "round trip");
        }
        let bad = [
            json!("a@example.com"),
            json!({"email": "a@example.com"}),
            json!({"format": "email"}),
            json!({"format": "email", "email": ""}),
            json!({"format": "email", "email": 7}),
            json!({"format": "email", "email": "a@example.com", "extra": 1}),
            json!({"format": "iss_sub", "iss": "x"}),
            json!({"format": "account", "uri": "mailto:a@example.com"}),
            json!({"format": "aliases", "identifiers": []}),
            json!({"format": "aliases", "identifiers": [{"format": "aliases", "identifiers": [{"format": "opaque", "id": "u"}]}]}),
            json!({"format": "complex", "user": {"format": "email", "email": "a@example.com"}}),
        ];
        for value in bad {
            assert!(SubjectId::from_json(&value).is_err(), "{value} must be refused");
        }
    }

    #[test]
    fn users_are_named_by_address_or_by_id_under_signoff_s_own_issuer_only() {
        let issuer = "https://auth.example.com";
        let read = |v: Value| SubjectId::from_json(&v).expect("subject").users(issuer);
        assert_eq!(
            read(json!({"format": "email", "email": " A@Example.com "})),
            vec![UserRef::Email("a@example.com".into())]
        );
        assert_eq!(
            read(json!({"format": "account", "uri": "acct:b@example.com"})),
            vec![UserRef::Email("b@example.com".into())]
        );
        assert_eq!(
            read(json!({"format": "iss_sub", "iss": "https://auth.example.com/", "sub": "u1"})),
            vec![UserRef::Id("u1".into())]
        );
        assert!(read(json!({"format": "iss_sub", "iss": "https://other.example", "sub": "u1"})).is_empty());
        assert!(read(json!({"format": "phone_number", "phone_number": "+12065550100"})).is_empty());
        let phone = SubjectId::from_json(&json!({"format": "phone_number", "phone_number": "+1"})).expect("read");
        assert!(!phone.resolvable());
        let other_issuer = SubjectId::from_json(&json!({"format": "iss_sub", "iss": "https://x", "sub": "u"}));
        assert!(other_issuer.expect("read").resolvable(), "a format signoff reads, naming nobody here");
        assert_eq!(
            read(
                json!({"format": "aliases", "identifiers": [{"format": "phone_number", "phone_number": "+1"}, {"format": "opaque", "id": "u2"}]})
            ),
            vec![UserRef::Id("u2".into())]
        );
    }

    #[test]
    fn a_subject_is_remembered_by_keys_an_address_as_accounts_are_looked_up() {
        let keys = |v: Value| SubjectId::from_json(&v).expect("subject").keys();
        assert_eq!(keys(json!({"format": "email", "email": " Ada@Example.COM"})), vec!["email:ada@example.com"]);
        assert_eq!(keys(json!({"format": "account", "uri": "acct:ada@example.com"})), vec!["email:ada@example.com"]);
        assert_eq!(
            keys(json!({"format": "iss_sub", "iss": "https://i.example/", "sub": "u"})),
            vec!["iss_sub:https://i.example|u"]
        );
        assert_eq!(
            keys(
                json!({"format": "aliases", "identifiers": [{"format": "opaque", "id": "u"}, {"format": "email", "email": "b@x.io"}]})
            ),
            vec!["opaque:u", "email:b@x.io"]
        );
    }
}
