//! The `Cookie` request header (RFC 6265 section 5.4, read leniently).

/// The values of the cookie `name` in `headers` (the raw values of every `Cookie` header, in
/// order). Headers that are not visible ASCII and malformed pairs are skipped, never an error;
/// surrounding whitespace and double quotes are removed from values.
pub fn values<'a, I>(headers: I, name: &'a str) -> impl Iterator<Item = &'a str> + 'a
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: 'a,
{
    // Visible ASCII: always UTF-8.
    value_bytes(headers, name).map(|v| std::str::from_utf8(v).unwrap_or_default())
}

/// [`values`] as the bytes they are (visible ASCII), for a reader that decodes them itself.
pub fn value_bytes<'a, I>(headers: I, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: 'a,
{
    // On bytes: every request reads a cookie or two, and `str`'s Unicode-aware trimming and
    // splitting cost several times this. Visible ASCII has no whitespace but spaces and tabs.
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    let trim = move |v: &'a [u8]| {
        let start = v.iter().position(|b| !blank(b)).unwrap_or(v.len());
        let end = v.iter().rposition(|b| !blank(b)).map_or(start, |i| i + 1);
        &v[start..end]
    };
    headers.into_iter().filter(|v| visible_ascii(v)).flat_map(|v| v.split(|b| *b == b';')).filter_map(move |pair| {
        let eq = pair.iter().position(|b| *b == b'=')?;
        (trim(&pair[..eq]) == name.as_bytes()).then(|| {
            let v = trim(&pair[eq + 1..]);
            let start = v.iter().position(|b| *b != b'"').unwrap_or(v.len());
            let end = v.iter().rposition(|b| *b != b'"').map_or(start, |i| i + 1);
            &v[start..end]
        })
    })
}

/// Whether `name` occurs anywhere in `headers`: `false` proves [`values`] finds nothing (a pair
/// it reads has that name, trimmed, within a header), at the cost of a search for the name's
/// first byte instead of a reading of every pair. (`memmem`'s searcher costs more to build than
/// a short header costs to read.)
pub fn mentions<'a, I>(headers: I, name: &str) -> bool
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let name = name.as_bytes();
    let mut headers = headers.into_iter();
    let Some(&first) = name.first() else { return headers.next().is_some() };
    headers.any(|v| memchr::memchr_iter(first, v).any(|i| v[i..].starts_with(name)))
}

/// The pairs of `headers` whose names are not among `except`, as sent (trimmed), empty pairs
/// dropped: what a rewritten `Cookie` header keeps.
pub fn others<'a, I>(headers: I, except: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: 'a,
{
    let text = |v: &'a [u8]| visible_ascii(v).then(|| std::str::from_utf8(v).ok()).flatten();
    headers.into_iter().filter_map(text).flat_map(|v| v.split(';')).map(str::trim).filter(move |pair| {
        let name = pair.split('=').next().unwrap_or_default().trim();
        !pair.is_empty() && !except.contains(&name)
    })
}

/// Whether a header value is visible ASCII (with spaces and tabs), as `http`'s
/// `HeaderValue::to_str` requires.
fn visible_ascii(v: &[u8]) -> bool {
    // Without an early exit, so it compiles to a vector loop: cookie headers are short.
    v.iter().fold(true, |ok, b| ok & ((*b == b'\t') | (b.wrapping_sub(0x20) < 0x5f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_in_every_header_and_garbage_is_skipped() {
        let headers: [&[u8]; 3] = [b"a=b; s=one; ;=;x", b"s=\xff", b" s = \"two\" "];
        assert_eq!(values(headers, "s").collect::<Vec<_>>(), ["one", "two"]);
        let edges: [&[u8]; 4] = [b"s", b"\ts\t=\t\"\"three\"\t;s=;s", b"ss=x; s =\"\"; t=s=u", b"s=a=b"];
        assert_eq!(values(edges, "s").collect::<Vec<_>>(), ["three", "", "", "a=b"]);
        assert_eq!(others(headers, &["s"]).collect::<Vec<_>>(), ["a=b", "=", "x"]);
    }

    #[test]
    fn a_name_not_mentioned_has_no_values() {
        let headers: [&[u8]; 2] = [b"a=b; s =one", b"x=\"s\""];
        assert!(mentions(headers, "s") && mentions(headers, "a") && !mentions(headers, "t"));
        assert!(!mentions(headers, "ss") && mentions(headers, "") && !mentions([] as [&[u8]; 0], "s"));
    }

    /// What `values` did on `str` before it read bytes: the same answers on every input.
    #[test]
    fn values_on_bytes_agree_with_the_text_reading() {
        fn reference<'a>(headers: &[&'a [u8]], name: &str) -> Vec<&'a str> {
            headers
                .iter()
                .filter_map(|v| visible_ascii(v).then(|| std::str::from_utf8(v).ok()).flatten())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| {
                    let (k, v) = pair.trim().split_once('=')?;
                    (k.trim() == name).then(|| v.trim().trim_matches('"'))
                })
                .collect()
        }
        let alphabet: &[u8] = b" \t;=\"sx\xff\n";
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut bytes = Vec::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for k in 0..(state % 24) {
                bytes.push(alphabet[((state >> (2 * k + 5)) % alphabet.len() as u64) as usize]);
            }
            let headers: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
            for name in ["s", "sx", ""] {
                let found = values(headers.iter().copied(), name).collect::<Vec<_>>();
                assert_eq!(found, reference(&headers, name), "{bytes:?}");
                assert!(found.is_empty() || mentions(headers.iter().copied(), name), "{bytes:?}");
            }
        }
    }
}
