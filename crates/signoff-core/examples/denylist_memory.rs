//! Scenario 5 of the benchmark: memory per denied access token after 1,000,000 revocations,
//! in the structure every validation asks (`signoff_core::denylist::Denylist`).
//!
//! `cargo run --release -p signoff-core --example denylist_memory [N]` prints how much the
//! process's resident set grew per token: the table is one large allocation, mapped fresh
//! and given back whole when it grows, so the growth is what the tokens cost.

use signoff_core::denylist::Denylist;

/// Resident set size in bytes (Linux); no figure at all rather than a wrong one.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux) is readable");
    let pages: usize = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("a resident page count");
    pages * 4096
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let issuer = "https://auth.example.com";
    let before = rss();
    let denied = Denylist::default();
    let mut jti = String::with_capacity(64);
    for i in 0..n {
        // Ids as signoff mints them: 22 characters of base64url.
        jti.clear();
        use std::fmt::Write;
        let _ = write!(jti, "{:0>22}", format!("{i:x}"));
        denied.deny(issuer, &jti, 2_000_000_000 + i as i64);
    }
    jti.clear();
    let _ = std::fmt::Write::write_fmt(&mut jti, format_args!("{:0>22}", format!("{:x}", n / 2)));
    assert!(denied.is_denied(issuer, &jti) && denied.len() == n, "every token is denied");
    let grown = rss().saturating_sub(before);
    println!("{n} denied tokens: {:.1} bytes each", grown as f64 / n as f64);
}
