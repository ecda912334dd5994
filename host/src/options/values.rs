//! Parsers of option values that say exactly what they accept: sizes, durations, times that
//! must not be zero, and listen addresses.
//!
//! Each is a clap value parser, so a flag, its `WSFN_*` variable and the config file are read
//! by the same function and refused with the same words. The help of an option names what
//! its parser accepts; the tests below pin both down.

use std::net::SocketAddr;
use std::time::Duration;

/// What a size option's help says it accepts; [`size`] accepts exactly that.
pub const SIZE_UNITS: &str = "a number of bytes, or a number with the unit KiB or MiB \
                              (1KiB = 1024 bytes)";

/// Parses `65536`, `64KiB` or `1MiB` (units in any case). Decimal units (`KB`, `MB`) and
/// shorthands (`k`, `m`) are refused rather than guessed, since `10MB` could mean either
/// 10,000,000 or 10,485,760 bytes.
pub fn size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size: use {SIZE_UNITS}, e.g. 65536 or 64KiB"))?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        _ => {
            return Err(format!(
                "unknown size unit `{}` in `{text}`: use {SIZE_UNITS}",
                unit.trim()
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses `250ms`, `5s`, `2m` or `250` (milliseconds); zero is refused, as a wait of nothing
/// would fail every call.
pub fn positive_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: use e.g. 250ms, 5s or 2m"))?;
    let duration = match unit.trim() {
        "" | "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        other => return Err(format!("unknown duration unit `{other}`: use ms, s or m")),
    };
    if duration.is_zero() {
        return Err("must be longer than 0: use e.g. 250ms, 5s or 2m".into());
    }
    Ok(duration)
}

/// Parses a number of milliseconds that must be at least 1, for times where 0 would not
/// mean "off" but "fail at once".
pub fn positive_millis(text: &str) -> Result<u64, String> {
    at_least(text, 1)
}

/// The shortest `--node-timeout-ms`: heartbeats go out every third of it, and a shorter
/// silence is not evidence that a node is gone.
pub const MIN_NODE_TIMEOUT_MS: u64 = 300;

/// Parses `--node-timeout-ms`, which must be at least [`MIN_NODE_TIMEOUT_MS`].
pub fn node_timeout_millis(text: &str) -> Result<u64, String> {
    at_least(text, MIN_NODE_TIMEOUT_MS)
}

fn at_least(text: &str, least: u64) -> Result<u64, String> {
    let number: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number of milliseconds"))?;
    if number < least {
        return Err(format!("{number} is too short: use at least {least}"));
    }
    Ok(number)
}

/// Parses a number of instances, at least 1 (with none, no event could ever run).
pub fn instance_count(text: &str) -> Result<u32, String> {
    let number: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a whole number"))?;
    if number == 0 {
        return Err("0 instances could run no event: use at least 1".into());
    }
    Ok(number)
}

/// Parses an address to listen on: an IP address and a port. A host name is refused with a
/// hint rather than resolved, since a name like `localhost` may stand for several addresses
/// and the host binds exactly one.
pub fn listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.trim().parse() {
        return Ok(address);
    }
    let hint = "an IP address and a port, e.g. 127.0.0.1:8080, [::1]:8080, or 0.0.0.0:8080 \
                for every interface";
    match text.trim().rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() && !name.is_empty() => Err(format!(
            "`{name}` is a host name, not an IP address: use {hint} (for `localhost`, \
             127.0.0.1:{port})"
        )),
        _ => Err(format!(
            "`{text}` is not an address to listen on: use {hint}"
        )),
    }
}

/// `on` or `off` (`true` and `false` too, as a config file writes them).
pub fn toggle(text: &str) -> Result<bool, String> {
    match text.trim() {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("`{other}` is neither `on` nor `off`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_bytes_kib_and_mib_only() {
        assert_eq!(size("1MiB"), Ok(1 << 20));
        assert_eq!(size("64KiB"), Ok(64 << 10));
        assert_eq!(size("64kib"), Ok(64 << 10));
        assert_eq!(size("100"), Ok(100));
        for refused in ["10MB", "10m", "1k", "1GiB", "5 B"] {
            let error = size(refused).unwrap_err();
            assert!(error.contains("KiB or MiB"), "{refused}: {error}");
        }
        assert!(size("lots").unwrap_err().contains("not a size"));
        assert!(size("99999999999999999999MiB").is_err());
    }

    #[test]
    fn durations_accept_ms_s_and_m_but_not_zero() {
        assert_eq!(positive_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(positive_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(positive_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(positive_duration("40"), Ok(Duration::from_millis(40)));
        assert!(positive_duration("1h").unwrap_err().contains("ms, s or m"));
        assert!(positive_duration("soon").is_err());
        assert!(
            positive_duration("0s")
                .unwrap_err()
                .contains("longer than 0")
        );
    }

    #[test]
    fn times_that_cannot_be_zero_say_so() {
        assert_eq!(positive_millis("1"), Ok(1));
        assert!(positive_millis("0").unwrap_err().contains("at least 1"));
        assert!(
            node_timeout_millis("299")
                .unwrap_err()
                .contains("at least 300")
        );
        assert_eq!(node_timeout_millis("300"), Ok(300));
        assert!(instance_count("0").unwrap_err().contains("at least 1"));
    }

    #[test]
    fn listen_addresses_need_an_ip() {
        assert_eq!(
            listen_address("127.0.0.1:0"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert!(listen_address("[::1]:80").is_ok());
        let error = listen_address("localhost:0").unwrap_err();
        assert!(error.contains("not an IP address"), "{error}");
        assert!(error.contains("127.0.0.1:0"), "{error}");
        assert!(
            listen_address("8080")
                .unwrap_err()
                .contains("e.g. 127.0.0.1:8080")
        );
    }
}
