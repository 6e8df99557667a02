//! The `Cookie` request header (RFC 6265 section 5.4, read leniently).

/// The values of the cookie `name` in `headers` (the raw values of every `Cookie` header, in
/// order). Headers that are not visible ASCII and malformed pairs are skipped, never an error;
/// surrounding whitespace and double quotes are removed from values.
pub fn values<'a, I>(headers: I, name: &'a str) -> impl Iterator<Item = &'a str> + 'a
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: 'a,
{
    headers.into_iter().filter_map(visible_ascii).flat_map(|v| v.split(';')).filter_map(move |pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}

/// The pairs of `headers` whose names are not among `except`, as sent (trimmed), empty pairs
/// dropped: what a rewritten `Cookie` header keeps.
pub fn others<'a, I>(headers: I, except: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: 'a,
{
    headers.into_iter().filter_map(visible_ascii).flat_map(|v| v.split(';')).map(str::trim).filter(move |pair| {
        let name = pair.split('=').next().unwrap_or_default().trim();
        !pair.is_empty() && !except.contains(&name)
    })
}

/// A header value as text, if it is visible ASCII (with spaces and tabs) as `http`'s
/// `HeaderValue::to_str` requires.
fn visible_ascii(v: &[u8]) -> Option<&str> {
    v.iter().all(|b| *b == b'\t' || (0x20..0x7f).contains(b)).then(|| std::str::from_utf8(v).ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_in_every_header_and_garbage_is_skipped() {
        let headers: [&[u8]; 3] = [b"a=b; s=one; ;=;x", b"s=\xff", b" s = \"two\" "];
        assert_eq!(values(headers, "s").collect::<Vec<_>>(), ["one", "two"]);
        assert_eq!(others(headers, &["s"]).collect::<Vec<_>>(), ["a=b", "=", "x"]);
    }
}
