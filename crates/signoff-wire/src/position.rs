//! Positions in the revocation feed: `Last-Event-ID`, `?after=` and `?wait=`.

/// A position: absent or empty is `None`; decimal digits only (no sign) that fit an `i64` are
/// `Some`; anything else is an error.
pub fn parse(raw: Option<&str>) -> Result<Option<i64>, InvalidPosition> {
    let Some(s) = raw.filter(|s| !s.is_empty()) else { return Ok(None) };
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InvalidPosition);
    }
    s.parse().map(Some).map_err(|_| InvalidPosition)
}

/// Not a whole number, 0 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidPosition;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(parse(None), Ok(None));
        assert_eq!(parse(Some("")), Ok(None));
        assert_eq!(parse(Some("42")), Ok(Some(42)));
        assert_eq!(parse(Some("-1")), Err(InvalidPosition));
        assert_eq!(parse(Some("99999999999999999999")), Err(InvalidPosition));
        assert_eq!(parse(Some("4 2")), Err(InvalidPosition));
        assert_eq!(parse(Some("+4")), Err(InvalidPosition));
        assert_eq!(parse(Some("-0")), Err(InvalidPosition));
        assert_eq!(parse(Some("007")), Ok(Some(7)));
    }
}
