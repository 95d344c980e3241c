//! Human sizes: `512M`, `1G`, `1.5GiB`, plain bytes.

/// Why a size string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid size '{0}': use a number with an optional unit K, M, G or T (powers of 1024), e.g. 512M or 2G")]
pub struct SizeError(pub String);

/// Parses `512M`, `2G`, `1.5g`, `1024`, `64MiB`, `100MB` into bytes (units are powers of 1024).
pub fn parse_size(input: &str) -> Result<u64, SizeError> {
    let s = input.trim();
    let err = || SizeError(input.to_string());
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(err());
    }
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(err()),
    };
    let value: f64 = num.parse().map_err(|_| err())?;
    let bytes = value * (1u64 << shift) as f64;
    // Sizes are stored as signed 64-bit integers: anything from 8 EiB up is nonsense anyway.
    if !bytes.is_finite() || bytes < 1.0 || bytes >= i64::MAX as f64 {
        return Err(err());
    }
    // In range (checked just above): the cast only drops the fraction of a byte.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let bytes = bytes as u64;
    Ok(bytes)
}

/// A duration that is not `30s`, `15m`, `2h` or `1d`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid duration '{0}': use a number with s, m, h or d, such as 90s, 30m or 2h")]
pub struct DurationError(pub String);

/// Parses `90s`, `30m`, `2h`, `1d` (or plain seconds, `45`) into seconds; at least one second.
pub fn parse_duration(input: &str) -> Result<u64, DurationError> {
    let s = input.trim();
    let err = || DurationError(input.to_string());
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: u64 = num.parse().map_err(|_| err())?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(err()),
    };
    match value.checked_mul(scale) {
        Some(secs) if secs > 0 => Ok(secs),
        _ => Err(err()),
    }
}

/// Formats bytes for humans: `512.0 MiB`, `3.2 GiB`, `900 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_s_m_h_d() {
        assert_eq!(parse_duration("45"), Ok(45));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d"), Ok(86400));
        for bad in [
            "",
            "0",
            "0s",
            "m",
            "1.5h",
            "10x",
            "-5m",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_units_as_powers_of_1024() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64 KiB").unwrap(), 64 << 10);
    }

    #[test]
    fn refuses_nonsense() {
        for bad in [
            "",
            "M",
            "12Q",
            "-5M",
            "0",
            "1..2G",
            "lots",
            "16777215T",
            "8388608T",
        ] {
            let e = parse_size(bad).unwrap_err();
            assert!(e.to_string().contains("e.g. 512M"), "{bad}: {e}");
        }
    }

    #[test]
    fn formats_for_humans() {
        assert_eq!(format_bytes(900), "900 B");
        assert_eq!(format_bytes(512 << 20), "512.0 MiB");
    }
}
