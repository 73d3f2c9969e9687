//! Go's `flag` package rules, which Serf's commands follow and scripts rely on: `-f`, `--f`,
//! `-f=v` and `-f v` (not for booleans); flags end at the first argument that is not one,
//! or at `--`; a bad flag is reported in Go's words on stderr.

use musubi_gocompat::strconv::parse_bool;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `-f` or `-f=false`.
    Bool,
    Text,
    /// Repeatable; every value is kept in order.
    List,
    /// A Go duration (`15s`, `500ms`).
    Duration,
    /// A signed integer.
    Int,
}

pub struct Flag {
    pub name: &'static str,
    pub kind: Kind,
    /// For the usage text: `-name=<regexp>` shows `<regexp>`; empty for booleans.
    pub value_hint: &'static str,
    pub help: &'static str,
}

#[derive(Debug, Default)]
pub struct Parsed {
    values: HashMap<&'static str, Vec<String>>,
    /// The arguments after the flags.
    pub args: Vec<String>,
}

impl Parsed {
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name)?.last().map(String::as_str)
    }

    pub fn list(&self, name: &str) -> &[String] {
        self.values.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn bool(&self, name: &str, default: bool) -> bool {
        self.text(name).and_then(parse_bool).unwrap_or(default)
    }

    pub fn duration(&self, name: &str) -> Option<Duration> {
        self.text(name).and_then(|v| crate::duration::parse(v).ok())
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.text(name).and_then(|v| v.parse().ok())
    }
}

/// `-h`, `-help` or `--help` before any `--`: the caller shows the usage and exits 0.
pub fn is_help_request(args: &[String]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| matches!(a.as_str(), "-h" | "-help" | "--help" | "--h"))
}

/// Parse `args` against `flags`; `Err` is Go's message, e.g. `flag provided but not
/// defined: -bogus`.
pub fn parse(flags: &[&Flag], args: &[String]) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            break;
        }
        let Some(body) = flag_body(arg)? else {
            parsed.args.push(arg.clone());
            break;
        };
        let (name, inline) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let flag = flags
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| format!("flag provided but not defined: -{name}"))?;
        let value = match (flag.kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (_, Some(value)) => value,
            (_, None) => rest
                .next()
                .cloned()
                .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
        };
        check_value(flag, &value)?;
        parsed.values.entry(flag.name).or_default().push(value);
    }
    parsed.args.extend(rest.cloned());
    Ok(parsed)
}

/// The flag part of `-name...` / `--name...`; `None` for a positional argument.
fn flag_body(arg: &str) -> Result<Option<&str>, String> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return Ok(None);
    }
    let body = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return Err(format!("bad flag syntax: {arg}"));
    }
    Ok(Some(body))
}

fn check_value(flag: &Flag, value: &str) -> Result<(), String> {
    let valid = match flag.kind {
        Kind::Bool => {
            return parse_bool(value).map(|_| ()).ok_or_else(|| {
                format!(
                    "invalid boolean value {value:?} for -{}: parse error",
                    flag.name
                )
            });
        }
        Kind::Text | Kind::List => true,
        Kind::Duration => crate::duration::parse(value).is_ok(),
        Kind::Int => value.parse::<i64>().is_ok(),
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid value {value:?} for flag -{}: parse error",
            flag.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn flag(name: &'static str, kind: Kind) -> Flag {
        Flag {
            name,
            kind,
            value_hint: "",
            help: "",
        }
    }
    const COALESCE: Flag = flag("coalesce", Kind::Bool);
    const TAG: Flag = flag("tag", Kind::List);
    const TIMEOUT: Flag = flag("timeout", Kind::Duration);

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_stop_at_the_first_positional_argument() {
        let flags = [&COALESCE, &TAG, &TIMEOUT];
        let parsed = parse(
            &flags,
            &args(&[
                "--coalesce=false",
                "-tag",
                "a=b",
                "-tag=c=d",
                "name",
                "-tag",
                "x",
            ]),
        )
        .unwrap();
        assert!(!parsed.bool("coalesce", true));
        assert_eq!(parsed.list("tag"), ["a=b", "c=d"]);
        assert_eq!(parsed.args, ["name", "-tag", "x"]);
        let parsed = parse(&flags, &args(&["-coalesce", "--", "-x"])).unwrap();
        assert!(parsed.bool("coalesce", false));
        assert_eq!(parsed.args, ["-x"]);
    }

    #[test]
    fn bad_flags_are_reported_in_gos_words() {
        let flags = [&COALESCE, &TIMEOUT];
        let bad = |list: &[&str]| match parse(&flags, &args(list)) {
            Err(message) => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(bad(&["-bogus"]), "flag provided but not defined: -bogus");
        assert_eq!(bad(&["-timeout"]), "flag needs an argument: -timeout");
        assert_eq!(
            bad(&["-timeout", "soon"]),
            "invalid value \"soon\" for flag -timeout: parse error"
        );
        assert_eq!(
            bad(&["-coalesce=maybe"]),
            "invalid boolean value \"maybe\" for -coalesce: parse error"
        );
        assert_eq!(bad(&["---x"]), "bad flag syntax: ---x");
    }

    #[test]
    fn help_is_asked_for_anywhere_before_a_double_dash() {
        assert!(is_help_request(&args(&["x", "-h"])));
        assert!(!is_help_request(&args(&["--", "-help"])));
    }
}
