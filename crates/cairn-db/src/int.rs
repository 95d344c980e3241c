//! Sizes and counts are `u64` in Cairn and `INTEGER` (signed 64-bit) in SQLite. An `as` cast
//! would store a value from 8 EiB up as a negative number (which then sorts and sums wrongly in
//! SQL) and read a negative one back as a huge size. These clamp instead.

/// A `u64` as SQLite stores it: values past `i64::MAX` (nonsense as sizes) clamp to it.
pub(crate) fn to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored integer as a `u64`: a negative value (only a damaged row has one) reads as 0.
pub(crate) fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_clamp_instead_of_wrapping() {
        assert_eq!(to_sql(5), 5);
        assert_eq!(to_sql(u64::MAX), i64::MAX);
        assert_eq!(from_sql(7), 7);
        assert_eq!(from_sql(-1), 0);
        assert_eq!(from_sql(to_sql(1 << 40)), 1 << 40);
    }
}
