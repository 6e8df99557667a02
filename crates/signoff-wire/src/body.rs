//! Request bodies: `application/json` or `application/x-www-form-urlencoded`, decoded strictly
//! into a JSON object that the route's typed request is then read from.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Why a body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyError {
    /// Neither JSON nor a form (nor empty without a content type).
    UnsupportedMediaType,
    /// Bad syntax, invalid UTF-8 or not an object; the message is safe to show.
    Malformed(&'static str),
}

/// The media type of a `Content-Type` value without parameters, lower-cased.
pub fn media_type(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// Decodes a body of the media type `media` (see [`media_type`]) into a JSON object. An empty
/// body without a content type reads as an empty object.
pub fn decode(media: Option<&str>, bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    let value = match media {
        Some("application/json") => {
            serde_json::from_slice::<Value>(bytes).map_err(|_| BodyError::Malformed("malformed JSON body"))?
        }
        Some("application/x-www-form-urlencoded") => return parse_form(bytes),
        None if bytes.is_empty() => return Ok(Map::new()),
        _ => return Err(BodyError::UnsupportedMediaType),
    };
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(BodyError::Malformed("the body must be an object")),
    }
}

/// Decodes a form body into an object of strings, refusing invalid UTF-8 rather than replacing
/// it. A key given twice keeps its first value.
pub fn parse_form(bytes: &[u8]) -> Result<Map<String, Value>, BodyError> {
    let decode = |raw: &[u8]| -> Result<String, BodyError> {
        let spaced: Vec<u8> = raw.iter().map(|b| if *b == b'+' { b' ' } else { *b }).collect();
        percent_encoding::percent_decode(&spaced)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| BodyError::Malformed("form body is not valid UTF-8"))
    };
    let mut map = Map::new();
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let mut kv = pair.splitn(2, |b| *b == b'=');
        let key = decode(kv.next().unwrap_or_default())?;
        let value = decode(kv.next().unwrap_or_default())?;
        map.entry(key).or_insert(Value::String(value));
    }
    Ok(map)
}

/// A serde error's message without the position it was found at (which says nothing to a
/// client about its JSON object, read from a value rather than text).
pub fn without_position(msg: &str) -> &str {
    msg.split(" at line ").next().unwrap_or(msg)
}

/// Accepts `true`/`false` and the strings forms send (`on`, `1`, `true`, `yes`, empty).
pub fn flex_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Str(String),
    }
    match B::deserialize(d)? {
        B::Bool(b) => Ok(b),
        B::Str(s) => match s.to_ascii_lowercase().as_str() {
            "on" | "1" | "true" | "yes" => Ok(true),
            "off" | "0" | "false" | "no" | "" => Ok(false),
            _ => Err(serde::de::Error::custom("expected a boolean")),
        },
    }
}

/// Accepts a whole number, or the string of one that forms send; absent or empty is `None`.
pub fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Num(u64),
        Str(String),
    }
    match Option::<N>::deserialize(d)? {
        None => Ok(None),
        Some(N::Num(n)) => Ok(Some(n)),
        Some(N::Str(s)) if s.trim().is_empty() => Ok(None),
        Some(N::Str(s)) => s.trim().parse().map(Some).map_err(|_| serde::de::Error::custom("expected a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_is_strict() {
        let v = parse_form(b"email=a%40b.c&password=x+y&email=ignored&flag").expect("a form");
        assert_eq!(v["email"], "a@b.c");
        assert_eq!(v["password"], "x y");
        assert_eq!(v["flag"], "");
        assert!(parse_form(b"email=%FF%FE").is_err());
    }

    #[test]
    fn only_objects_of_known_media_types_are_bodies() {
        assert_eq!(decode(None, b""), Ok(Map::new()));
        assert_eq!(decode(None, b"x"), Err(BodyError::UnsupportedMediaType));
        assert_eq!(decode(Some("text/plain"), b"{}"), Err(BodyError::UnsupportedMediaType));
        assert!(matches!(decode(Some("application/json"), b"[1]"), Err(BodyError::Malformed(_))));
        assert!(matches!(decode(Some("application/json"), b"{"), Err(BodyError::Malformed(_))));
        assert_eq!(media_type(" Application/JSON ; charset=utf-8"), "application/json");
    }
}
