//! Go's `time.ParseDuration`, which Serf uses for `-retry-interval`, `reconnect_timeout`
//! and the other duration keys: `1h30m`, `1.5s`, `300ms`, `0`. Errors are worded as Go
//! words them, since Serf prints them as they are. The `musubi kv`/`bench` flags use it too,
//! with bare numbers read as seconds ([`parse_or_seconds`]).

use std::time::Duration;

/// Parse a Go duration. Negative durations are refused: no Serf setting takes one.
pub fn parse(text: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {text:?}");
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    if unsigned.starts_with('-') {
        return Err(invalid());
    }
    if unsigned == "0" {
        return Ok(Duration::ZERO);
    }
    if unsigned.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    let mut rest = unsigned;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let value: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(format!("time: missing unit in duration {text:?}"));
        }
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(format!("time: unknown unit {unit:?} in duration {text:?}")),
        };
        total += value * nanos_per_unit;
        rest = next;
    }
    Ok(Duration::from_nanos(total.round() as u64))
}

/// A Go duration, or a bare number of seconds (`3`, `0.5`), as `musubi kv --timeout` and
/// `musubi bench --duration` have always taken.
pub fn parse_or_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| format!("{text}: {e}")),
        Err(_) => parse(text),
    }
}

/// Go's `Duration.String()`, used in Serf's log lines: `30s`, `1m0s`, `1.5s`, `500ms`.
pub fn format(duration: Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit, scale) = match nanos {
            n if n < 1_000 => ("ns", 1),
            n if n < 1_000_000 => ("µs", 1_000),
            _ => ("ms", 1_000_000),
        };
        return format!("{}{unit}", fraction(nanos, scale));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = fraction(nanos % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{seconds}s"),
        (0, m) => format!("{m}m{seconds}s"),
        (h, m) => format!("{h}h{m}m{seconds}s"),
    }
}

/// `value / scale` with the decimals Go prints: as many as needed, none if whole.
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.ilog10() as usize;
    let decimals = format!("{rest:0width$}");
    format!("{whole}.{}", decimals.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms_parse() {
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("+2m").unwrap(), Duration::from_secs(120));
    }

    #[test]
    fn bare_numbers_are_seconds_where_allowed() {
        assert_eq!(parse_or_seconds("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_or_seconds("0.5").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_or_seconds("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_or_seconds("2x").is_err());
        assert!(parse_or_seconds("-1").is_err());
    }

    #[test]
    fn formats_as_go_prints() {
        assert_eq!(format(Duration::from_secs(30)), "30s");
        assert_eq!(format(Duration::from_secs(60)), "1m0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::from_millis(500)), "500ms");
        assert_eq!(format(Duration::from_secs(5400)), "1h30m0s");
        assert_eq!(format(Duration::ZERO), "0s");
    }

    #[test]
    fn errors_read_as_go_writes_them() {
        assert_eq!(
            parse("5x").unwrap_err(),
            r#"time: unknown unit "x" in duration "5x""#
        );
        assert_eq!(
            parse("5").unwrap_err(),
            r#"time: missing unit in duration "5""#
        );
        assert_eq!(parse("").unwrap_err(), r#"time: invalid duration """#);
        assert_eq!(parse("s").unwrap_err(), r#"time: invalid duration "s""#);
        assert_eq!(parse("-1s").unwrap_err(), r#"time: invalid duration "-1s""#);
    }
}
