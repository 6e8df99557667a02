//! `return_to` validation (the open-redirect defence) with this server's origins; the rules are
//! `signoff_wire::return_to`'s.

use signoff_wire::return_to::{self, Policy};

use crate::config::Config;

/// The validated target, or `default`.
pub fn validate(candidate: Option<&str>, default: &str, config: &Config) -> String {
    let policy = Policy {
        public_url: &config.public_url,
        public_origin: &config.public_origin,
        allowlist: &config.redirect_allowlist,
    };
    candidate.and_then(|c| return_to::accept(c, policy)).unwrap_or_else(|| default.to_owned())
}
