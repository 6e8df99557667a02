//! The audit's config file (TOML): where the app is, how to sign in, what only a signed-in user
//! sees, and where its logout control is.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// What `signoff audit --config FILE` reads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// The app's origin, e.g. `http://localhost:8000`: the only place anything is sent.
    pub base_url: String,
    pub login: Login,
    pub protected: Protected,
    pub logout: Logout,
    /// Optional: the app's "log out everywhere" control, tried from a second browser.
    pub everywhere: Option<Everywhere>,
    /// The browser to drive (Debian's Chromium by default).
    #[serde(default = "default_browser")]
    pub browser: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The page with the sign-in form.
    pub url: String,
    /// Input name = value; a checkbox is ticked when its value is truthy ("1", "on", "true").
    pub fields: BTreeMap<String, String>,
    /// The control to click; by default the form's submit button.
    pub submit: Option<String>,
    /// The remember-me cookie's name, when it cannot be told by its name (one containing
    /// "remember" is found without this).
    pub remember_cookie: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    /// A page only a signed-in user sees.
    pub url: String,
    /// Text on it that shows the user is signed in.
    pub expect: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logout {
    /// Where the logout control is.
    pub page: String,
    /// The control to click.
    pub selector: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Everywhere {
    pub page: String,
    pub selector: String,
}

fn default_browser() -> String {
    "/usr/bin/chromium".into()
}

/// Why the config cannot be used; names the file and what is wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {cause}")]
    Read { file: String, cause: std::io::Error },
    #[error("{file}: {cause}")]
    Parse { file: String, cause: String },
}

impl AuditConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read { file: file.clone(), cause })?;
        Self::parse(&text).map_err(|cause| ConfigError::Parse { file, cause })
    }

    /// Parses and checks the config; the error names the key that is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        // The message and the line, not the parser's quote of it: that line may hold a password.
        let config: Self = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text.as_bytes()[..s.start.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1);
            let message = e.message().trim().to_owned();
            line.map_or(message.clone(), |l| format!("line {l}: {message}"))
        })?;
        let base = url::Url::parse(&config.base_url)
            .map_err(|e| format!("base_url {:?} is not a URL ({e})", config.base_url))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(format!("base_url {:?} must be an http:// or https:// origin", config.base_url));
        }
        for (key, path) in [
            ("login.url", &config.login.url),
            ("protected.url", &config.protected.url),
            ("logout.page", &config.logout.page),
        ]
        .into_iter()
        .chain(config.everywhere.as_ref().map(|e| ("everywhere.page", &e.page)))
        {
            let at = base.join(path).map_err(|e| format!("{key} {path:?} is not a path ({e})"))?;
            if at.origin() != base.origin() {
                return Err(format!("{key} {path:?} leaves base_url's origin; the audit sends nothing elsewhere"));
            }
        }
        if config.protected.expect.trim().is_empty() {
            return Err("protected.expect is empty: give text only a signed-in user sees".into());
        }
        if config.login.fields.is_empty() {
            return Err(
                "login.fields is empty: give the sign-in form's inputs, e.g. { email = \"…\", password = \"…\" }"
                    .into(),
            );
        }
        Ok(config)
    }

    /// The app's origin as a URL.
    pub fn base(&self) -> url::Url {
        // Checked in `parse`.
        url::Url::parse(&self.base_url).unwrap_or_else(|_| url::Url::parse("http://localhost/").expect("a URL"))
    }

    /// `path` on the app's origin.
    pub fn at(&self, path: &str) -> url::Url {
        self.base().join(path).unwrap_or_else(|_| self.base())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r##"
base_url = "http://localhost:8000"
[login]
url = "/login"
fields = { email = "ada@example.com", password = "pw", remember = "1" }
[protected]
url = "/account"
expect = "Signed in as"
[logout]
page = "/account"
selector = "#logout"
"##;

    #[test]
    fn reads_the_issues_example() {
        let c = AuditConfig::parse(GOOD).expect("parses");
        assert_eq!(c.login.fields["email"], "ada@example.com");
        assert_eq!(c.at(&c.protected.url).as_str(), "http://localhost:8000/account");
        assert_eq!(c.browser, "/usr/bin/chromium");
        assert!(c.everywhere.is_none());
    }

    #[test]
    fn the_configs_in_docs_are_valid() {
        let demo = AuditConfig::parse(include_str!("../../../docs/audit/signoff-demo.toml")).expect("the demo's");
        assert!(demo.everywhere.is_some());
        AuditConfig::parse(include_str!("../../../docs/audit/app.toml")).expect("the template");
    }

    #[test]
    fn names_what_is_wrong() {
        let off = GOOD.replace("url = \"/account\"", "url = \"https://elsewhere.example/account\"");
        assert!(AuditConfig::parse(&off).expect_err("off-site").contains("protected.url"));
        let typo = GOOD.replace("selector", "selektor");
        assert!(AuditConfig::parse(&typo).expect_err("typo").contains("selektor"));
        let broken = GOOD.replace("password = \"pw\"", "password = \"s3cret-pw");
        let e = AuditConfig::parse(&broken).expect_err("broken");
        assert!(e.contains("line 5") && !e.contains("s3cret"), "{e}");
        let no_expect = GOOD.replace("\"Signed in as\"", "\" \"");
        assert!(AuditConfig::parse(&no_expect).expect_err("empty").contains("protected.expect"));
        let bad_base = GOOD.replace("http://localhost:8000", "localhost:8000");
        assert!(AuditConfig::parse(&bad_base).expect_err("base").contains("base_url"));
    }
}
