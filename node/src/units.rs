//! Parsing of sizes, rates and durations given on the command line.

use crate::error::{Error, Result};

fn split_number(s: &str) -> Option<(u64, String)> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let n = s[..digits].parse().ok()?;
    Some((n, s[digits..].trim().to_ascii_lowercase()))
}

/// Parses a byte size such as `1000`, `512KiB`, `256MiB`, `1GiB` (also `KB`/`MB`/`GB`, powers of ten).
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || {
        Error::new(format!(
            "'{s}' is not a size; write a number of bytes with an optional unit, e.g. 512KiB, 256MiB or 1GiB"
        ))
    };
    let (n, unit) = split_number(s).ok_or_else(bad)?;
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Parses a link rate such as `500kbit`, `100mbit` or `1gbit` (bits per second, powers of ten)
/// and returns bytes per second.
pub fn parse_rate(s: &str) -> Result<u64> {
    let bad = || {
        Error::new(format!(
            "'{s}' is not a rate; write bits per second with a unit, e.g. 500kbit, 100mbit or 1gbit"
        ))
    };
    let (n, unit) = split_number(s).ok_or_else(bad)?;
    let mult: u64 = match unit.as_str() {
        "bit" | "bps" => 1,
        "kbit" | "kbps" => 1_000,
        "mbit" | "mbps" => 1_000_000,
        "gbit" | "gbps" => 1_000_000_000,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(mult).ok_or_else(bad)? / 8;
    if bytes == 0 {
        return Err(Error::new(format!(
            "rate '{s}' is below one byte per second; give at least 8bit"
        )));
    }
    Ok(bytes)
}

/// Parses a duration such as `90s`, `45m`, `12h`, `30d` or `2w` and returns seconds.
pub fn parse_duration(s: &str) -> Result<u64> {
    let bad = || {
        Error::new(format!(
            "'{s}' is not a duration; write a number with a unit, e.g. 3600s, 90m, 12h or 30d"
        ))
    };
    let (n, unit) = split_number(s).ok_or_else(bad)?;
    let mult: u64 = match unit.as_str() {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Formats a byte count for people, e.g. `1.50 MiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("512KiB").unwrap(), 512 * 1024);
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("2MB").unwrap(), 2_000_000);
        for bad in [
            "",
            "MiB",
            "12 parsecs",
            "-1",
            "99999999999999999999GiB",
            "1.5MiB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100mbit").unwrap(), 12_500_000);
        assert_eq!(parse_rate("1gbit").unwrap(), 125_000_000);
        assert_eq!(parse_rate("500kbit").unwrap(), 62_500);
        assert_eq!(parse_rate("16Mbit").unwrap(), 2_000_000);
        for bad in ["100", "100mb", "fast", "0mbit", "1bit"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("90m").unwrap(), 5_400);
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("1y").is_err());
    }

    #[test]
    fn sizes_for_people() {
        assert_eq!(format_size(12), "12 B");
        assert_eq!(format_size(3 << 20), "3.00 MiB");
    }
}
