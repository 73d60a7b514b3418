//! Sizes, rates and durations as scenarios write them.

/// Parses a byte size: `512MiB`, `1.5GiB`, `100MB`, `4096` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, unit) = split_unit(s)?;
    let mult: f64 = match unit {
        "" | "B" => 1.0,
        "KB" | "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    finite(num * mult)
}

/// Parses a rate into bytes per second: `10Gbit`, `100Mbit`, `1Gbps`, `125MB/s`, `1GiB/s`.
pub fn parse_rate(s: &str) -> Option<u64> {
    let s = s.trim();
    if let Some(bytes) = s.strip_suffix("/s") {
        return parse_size(bytes);
    }
    let (num, unit) = split_unit(s)?;
    let bits: f64 = match unit {
        "bit" | "bps" => 1.0,
        "kbit" | "Kbit" | "kbps" | "Kbps" => 1e3,
        "Mbit" | "Mbps" => 1e6,
        "Gbit" | "Gbps" => 1e9,
        "Tbit" | "Tbps" => 1e12,
        _ => return None,
    };
    finite(num * bits / 8.0)
}

/// Parses a duration into nanoseconds: `200us`, `20ms`, `60s`, `2m`, `1h`, `0`.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (num, unit) = split_unit(s)?;
    let mult: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        "h" => 3600e9,
        "" if num == 0.0 => 0.0,
        _ => return None,
    };
    finite(num * mult)
}

fn split_unit(s: &str) -> Option<(f64, &str)> {
    let s = s.trim();
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if end == 0 {
        return None;
    }
    let num: f64 = s[..end].parse().ok()?;
    Some((num, s[end..].trim()))
}

fn finite(x: f64) -> Option<u64> {
    (0.0..1.8e19).contains(&x).then(|| x.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("100MB"), Some(100_000_000));
        assert_eq!(parse_size("12"), Some(12));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_rate("10Gbit"), Some(1_250_000_000));
        assert_eq!(parse_rate("1Gbps"), Some(125_000_000));
        assert_eq!(parse_rate("125MB/s"), Some(125_000_000));
        assert_eq!(parse_rate("10Gb"), None);
        assert_eq!(parse_duration("200us"), Some(200_000));
        assert_eq!(parse_duration("20ms"), Some(20_000_000));
        assert_eq!(parse_duration("60s"), Some(60_000_000_000));
        assert_eq!(parse_duration("2m"), Some(120_000_000_000));
        assert_eq!(parse_duration("0"), Some(0));
        assert_eq!(parse_duration("5"), None);
    }
}
