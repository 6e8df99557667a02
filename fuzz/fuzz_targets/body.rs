//! Request bodies as the server decodes them: the first byte picks the `Content-Type` (JSON,
//! form, none, another), the rest is the body. What decodes is an object, read into a request
//! shaped like sign-in's (strings, an optional string, a form boolean and a form number).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use signoff_wire::body::{self, BodyError};

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct SignIn {
    email: String,
    password: String,
    #[serde(default, deserialize_with = "body::flex_bool")]
    remember_me: bool,
    #[serde(default, deserialize_with = "body::flex_u64")]
    max_age: Option<u64>,
    return_to: Option<String>,
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    let content_type = match kind % 5 {
        0 => Some("application/json".to_owned()),
        1 => Some("application/x-www-form-urlencoded".to_owned()),
        2 => None,
        3 => Some(body::media_type("Application/JSON; charset=utf-8")),
        _ => Some(body::media_type(&String::from_utf8_lossy(&bytes[..bytes.len().min(40)]))),
    };
    match body::decode(content_type.as_deref(), bytes) {
        Ok(object) => {
            if content_type.as_deref() == Some("application/x-www-form-urlencoded") {
                assert!(object.values().all(serde_json::Value::is_string), "a form has strings only");
                assert!(object.len() <= bytes.len() / 2 + 1);
            }
            if let Err(e) = serde_json::from_value::<SignIn>(serde_json::Value::Object(object)) {
                let _ = body::without_position(&e.to_string());
            }
        }
        Err(BodyError::UnsupportedMediaType) => {
            assert!(!matches!(
                content_type.as_deref(),
                Some("application/json" | "application/x-www-form-urlencoded")
            ));
        }
        Err(BodyError::Malformed(msg)) => assert!(!msg.is_empty()),
    }
});
