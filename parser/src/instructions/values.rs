//! Small typed values used by instructions: `user[:group]` pairs, port
//! ranges, octal modes, Go-style durations, and [`Deferred`] for values that
//! can only be typed once variables are expanded.

use std::fmt;
use std::time::Duration;

/// A value that may hold variable references. Literal text is typed at parse
/// time (and rejected there if malformed); text with a `$` is kept as
/// written until the executor expands it and types it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deferred<T> {
    /// The typed value.
    Value(T),
    /// Text with variable references, typed after expansion.
    Unexpanded(String),
}

impl<T> Deferred<T> {
    /// Types `text` with `parse` unless it refers to variables.
    pub(crate) fn parse<E>(
        text: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Self, E> {
        if text.contains('$') {
            Ok(Deferred::Unexpanded(text.to_string()))
        } else {
            parse(text).map(Deferred::Value)
        }
    }

    /// The typed value, if there is one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Deferred::Value(v) => Some(v),
            Deferred::Unexpanded(_) => None,
        }
    }
}

/// `user[:group]`, as in `USER` and `--chown`. Either part may be a name or
/// a numeric id; both are kept as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroup {
    /// User name or uid.
    pub user: String,
    /// Group name or gid, if given.
    pub group: Option<String>,
}

impl UserGroup {
    /// Splits at the first `:` that is not inside a `${...}`.
    pub(crate) fn parse(text: &str) -> Self {
        match split_outside_braces(text, ':') {
            Some((user, group)) => Self {
                user: user.to_string(),
                group: Some(group.to_string()),
            },
            None => Self {
                user: text.to_string(),
                group: None,
            },
        }
    }
}

impl fmt::Display for UserGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.group {
            Some(g) => write!(f, "{}:{g}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// Splits `text` at the first `sep` outside `${...}`.
pub(crate) fn split_outside_braces(text: &str, sep: char) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    let mut prev = '\0';
    for (i, c) in text.char_indices() {
        match c {
            '{' if prev == '$' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            c if c == sep && depth == 0 => return Some((&text[..i], &text[i + c.len_utf8()..])),
            _ => {}
        }
        prev = c;
    }
    None
}

/// Transport protocol of an exposed port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

/// Why a value does not read as its type, with the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// EXPOSE's protocol.
    #[error("unknown protocol {0:?} (expected tcp, udp or sctp)")]
    Protocol(String),
    /// A port that is not a number up to 65535.
    #[error("invalid port {0:?} (expected a number from 0 to 65535)")]
    Port(String),
    /// A port range whose end is below its start.
    #[error("invalid port range {0:?}: end is below start")]
    PortRange(String),
    /// Not an octal mode.
    #[error("invalid mode {0:?} (expected octal like 0755)")]
    Mode(String),
    /// Not a number.
    #[error("invalid number {0:?}")]
    Number(String),
    /// Not a Go duration.
    #[error("invalid duration {0:?} (expected e.g. 30s, 1m30s, 500ms)")]
    Duration(String),
    /// Not a size as Docker reads it.
    #[error("invalid size {0:?} (expected e.g. 64m or 1g)")]
    Size(String),
}

/// `port`, `port/proto`, `start-end[/proto]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port (equal to `start` for a single port).
    pub end: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl PortRange {
    /// Parses an EXPOSE word.
    pub(crate) fn parse(text: &str) -> Result<Self, ValueError> {
        let (ports, proto) = match text.split_once('/') {
            Some((p, proto)) => (p, proto),
            None => (text, "tcp"),
        };
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err(ValueError::Protocol(proto.to_string())),
        };
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| ValueError::Port(p.to_string()))
        };
        let (start, end) = match ports.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => (port(ports)?, port(ports)?),
        };
        if end < start {
            return Err(ValueError::PortRange(ports.to_string()));
        }
        Ok(Self {
            start,
            end,
            protocol,
        })
    }
}

/// An octal file mode such as `0755` (at most `7777`).
pub(crate) fn parse_mode(text: &str) -> Result<u32, ValueError> {
    match u32::from_str_radix(text, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(ValueError::Mode(text.to_string())),
    }
}

/// A numeric id or size.
pub(crate) fn parse_number<T: std::str::FromStr>(text: &str) -> Result<T, ValueError> {
    text.parse()
        .map_err(|_| ValueError::Number(text.to_string()))
}

/// A Go duration string: `300ms`, `1.5h`, `2h45m`, or `0`. Negative
/// durations are rejected.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    let bad = || ValueError::Duration(text.to_string());
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per = match &rest[..unit_len] {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += number * nanos_per;
    }
    // Go durations are int64 nanoseconds; beyond that is an overflow there.
    if !total.is_finite() || total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_group_split() {
        let ug = UserGroup::parse("a:b");
        assert_eq!((ug.user.as_str(), ug.group.as_deref()), ("a", Some("b")));
        let ug = UserGroup::parse("${U:-x}:${G:-y}");
        assert_eq!(
            (ug.user.as_str(), ug.group.as_deref()),
            ("${U:-x}", Some("${G:-y}"))
        );
        assert_eq!(UserGroup::parse("1000").group, None);
    }

    #[test]
    fn ports() {
        let ok = |s: &str, a, b, p| {
            assert_eq!(
                PortRange::parse(s),
                Ok(PortRange {
                    start: a,
                    end: b,
                    protocol: p
                })
            )
        };
        ok("80", 80, 80, Protocol::Tcp);
        ok("53/udp", 53, 53, Protocol::Udp);
        ok("8000-8010/SCTP", 8000, 8010, Protocol::Sctp);
        for bad in ["x", "70000", "80/icmp", "90-80", "", "80-"] {
            assert!(PortRange::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            ("0", Some(0)),
            ("5s", Some(5_000_000_000)),
            ("1m30s", Some(90_000_000_000)),
            ("1.5h", Some(5_400_000_000_000)),
            ("300ms", Some(300_000_000)),
            ("10us", Some(10_000)),
            ("5", None),
            ("s", None),
            ("-1s", None),
            ("1x", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_duration(text).ok().map(|d| d.as_nanos() as u64);
            assert_eq!(got, want, "{text}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("17777").is_err());
    }

    #[test]
    fn deferred() {
        let d: Result<Deferred<u32>, ValueError> = Deferred::parse("$X", parse_number);
        assert_eq!(d, Ok(Deferred::Unexpanded("$X".into())));
        let d: Result<Deferred<u32>, ValueError> = Deferred::parse("7", parse_number);
        assert_eq!(d.ok().and_then(|d| d.value().copied()), Some(7));
    }
}
