//! Go's `flag` package, which etcd and Serf parse their command lines with: `-f`, `--f`,
//! `-f=v` and `-f v` (but a boolean takes its value only as `-f=v`: `-f false` is the flag,
//! then the argument `false`); flags end at the first argument that is not one, or after
//! `--`; `-h` and `-help`, when no such flag is defined, ask for help; a bad flag is
//! reported in Go's words, which scripts and users match. Each caller keeps its own table
//! of flags (the `lookup` of [`parse`]) and its own way of reporting.

use crate::strconv::{NumError, parse_bool, parse_int, parse_uint, quote};

/// What a flag's value must be, as the Go type of the flag decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bool`: `-f` alone is true; a value only as `-f=v`, read by `strconv.ParseBool`.
    Bool,
    /// `string`, and the repeatable flags (each value is kept, in order).
    Text,
    /// `int`/`int64`: `strconv.ParseInt` with base 0.
    Int,
    /// `uint`/`uint64`: `strconv.ParseUint` with base 0.
    Uint,
    /// `time.Duration`: a Go duration (`500ms`, `1m30s`).
    Duration,
}

/// A command line Go's `flag` refuses, displayed in Go's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// `-h` or `-help` (with any value) where no such flag is defined.
    #[error("flag: help requested")]
    Help,
    #[error("flag provided but not defined: -{0}")]
    NotDefined(String),
    #[error("flag needs an argument: -{0}")]
    NeedsArgument(String),
    /// The whole argument: `---x`, `-=x`.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    #[error("invalid boolean value {} for -{name}: parse error", quote(value))]
    InvalidBoolean { name: String, value: String },
    #[error("invalid value {} for flag -{name}: {reason}", quote(value))]
    InvalidValue {
        name: String,
        value: String,
        reason: ValueError,
    },
}

/// Why a value does not fit its flag: Go's `flag` says one of these two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("parse error")]
    Parse,
    #[error("value out of range")]
    Range,
}

/// The flags given, in command-line order (a boolean without a value as `"true"`), keyed as
/// the caller's lookup keyed them, and the arguments after them.
#[derive(Debug, PartialEq)]
pub struct Parsed<F> {
    pub values: Vec<(F, String)>,
    pub args: Vec<String>,
}

impl<F: PartialEq> Parsed<F> {
    /// Every value given to `flag`, in order.
    pub fn all(&self, flag: F) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(move |(f, _)| *f == flag)
            .map(|(_, value)| value.as_str())
    }

    /// The value given last to `flag` (Go's flags keep the last).
    pub fn last(&self, flag: F) -> Option<&str> {
        self.all(flag).last()
    }
}

/// Parse `args` (without the program's name) as Go's `FlagSet.Parse` does. `lookup` names
/// a defined flag's key and kind, given its name without dashes.
pub fn parse<F>(
    args: &[String],
    lookup: impl Fn(&str) -> Option<(F, Kind)>,
) -> Result<Parsed<F>, FlagError> {
    let mut values = Vec::new();
    let mut rest = args.iter();
    let mut after = Vec::new();
    while let Some(arg) = rest.next() {
        let name_and_value = match flag_text(arg)? {
            Some(text) => text,
            None if arg == "--" => break,
            None => {
                after.push(arg.clone());
                break;
            }
        };
        let (name, inline) = match name_and_value.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (name_and_value, None),
        };
        let Some((key, kind)) = lookup(name) else {
            return Err(match name {
                "h" | "help" => FlagError::Help,
                _ => FlagError::NotDefined(name.to_string()),
            });
        };
        let value = match (kind, inline) {
            (Kind::Bool, None) => "true".to_string(),
            (_, Some(value)) => value.to_string(),
            (_, None) => rest
                .next()
                .cloned()
                .ok_or_else(|| FlagError::NeedsArgument(name.to_string()))?,
        };
        check(name, kind, &value)?;
        values.push((key, value));
    }
    after.extend(rest.cloned());
    Ok(Parsed {
        values,
        args: after,
    })
}

/// The flag in `-name[=value]` or `--name[=value]`; `None` for `--` and for an argument
/// that is not a flag (`-` included).
fn flag_text(arg: &str) -> Result<Option<&str>, FlagError> {
    if arg.len() < 2 || !arg.starts_with('-') || arg == "--" {
        return Ok(None);
    }
    let text = arg.strip_prefix("--").unwrap_or(&arg[1..]);
    if text.starts_with(['-', '=']) {
        return Err(FlagError::BadSyntax(arg.to_string()));
    }
    Ok(Some(text))
}

/// Go's `Value.Set` of each kind, for its error.
fn check(name: &str, kind: Kind, value: &str) -> Result<(), FlagError> {
    let reason = match kind {
        Kind::Text => return Ok(()),
        Kind::Bool => {
            return match parse_bool(value) {
                Some(_) => Ok(()),
                None => Err(FlagError::InvalidBoolean {
                    name: name.to_string(),
                    value: value.to_string(),
                }),
            };
        }
        Kind::Int => parse_int(value).err().map(value_error),
        Kind::Uint => parse_uint(value).err().map(value_error),
        Kind::Duration => crate::duration::parse(value)
            .err()
            .map(|_| ValueError::Parse),
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(FlagError::InvalidValue {
            name: name.to_string(),
            value: value.to_string(),
            reason,
        }),
    }
}

fn value_error(error: NumError) -> ValueError {
    match error {
        NumError::Syntax => ValueError::Parse,
        NumError::Range => ValueError::Range,
    }
}

/// Serf's command framework (mitchellh/cli) shows a command's help when `-h`, `-help` or
/// `--help` appears anywhere before `--`, positional arguments included, before the
/// command's flags are parsed; `serf agent` and `serf members ...` alike.
pub fn help_requested(args: &[String]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| matches!(a.as_str(), "-h" | "-help" | "--help" | "--h"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[(&str, Kind)] = &[
        ("coalesce", Kind::Bool),
        ("tag", Kind::Text),
        ("timeout", Kind::Duration),
        ("retries", Kind::Int),
        ("count", Kind::Uint),
    ];

    fn lookup(name: &str) -> Option<(&'static str, Kind)> {
        FLAGS.iter().find(|(n, _)| *n == name).copied()
    }

    fn parse_strs(list: &[&str]) -> Result<Parsed<&'static str>, FlagError> {
        let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        parse(&args, lookup)
    }

    fn refused(list: &[&str]) -> String {
        match parse_strs(list) {
            Err(e) => e.to_string(),
            Ok(parsed) => panic!("{list:?} parsed: {parsed:?}"),
        }
    }

    #[test]
    fn one_or_two_dashes_and_inline_or_next_values() {
        let parsed = parse_strs(&[
            "-tag", "a", "--tag", "b", "-tag=c=d", "--tag=e", "-count", "0x10",
        ])
        .unwrap();
        assert_eq!(
            parsed.all("tag").collect::<Vec<_>>(),
            ["a", "b", "c=d", "e"]
        );
        assert_eq!(parsed.last("tag"), Some("e"));
        assert_eq!(parsed.last("count"), Some("0x10"));
        assert!(parsed.args.is_empty());
    }

    #[test]
    fn a_boolean_takes_a_value_only_after_an_equals_sign() {
        let parsed = parse_strs(&["-coalesce", "false", "-tag", "x"]).unwrap();
        assert_eq!(parsed.values, [("coalesce", "true".to_string())]);
        assert_eq!(parsed.args, ["false", "-tag", "x"]);
        let parsed = parse_strs(&["--coalesce=F", "-coalesce=0"]).unwrap();
        assert_eq!(parsed.all("coalesce").collect::<Vec<_>>(), ["F", "0"]);
    }

    #[test]
    fn flags_stop_at_the_first_argument_that_is_not_one_or_after_a_double_dash() {
        let parsed = parse_strs(&["-tag", "a", "name", "-tag", "b"]).unwrap();
        assert_eq!(parsed.all("tag").collect::<Vec<_>>(), ["a"]);
        assert_eq!(parsed.args, ["name", "-tag", "b"]);
        let parsed = parse_strs(&["-coalesce", "--", "-bogus", "x"]).unwrap();
        assert_eq!(parsed.args, ["-bogus", "x"]);
        let parsed = parse_strs(&["-", "-tag"]).unwrap();
        assert_eq!(parsed.args, ["-", "-tag"]);
        // A flag's value may look like a flag.
        let parsed = parse_strs(&["-tag", "-x", "-retries", "-3"]).unwrap();
        assert_eq!(parsed.last("tag"), Some("-x"));
        assert_eq!(parsed.last("retries"), Some("-3"));
    }

    #[test]
    fn help_is_asked_by_h_or_help_when_no_such_flag_is_defined() {
        for args in [
            &["-h"][..],
            &["--help"],
            &["-help=false"],
            &["-tag", "a", "-h"],
        ] {
            assert_eq!(parse_strs(args).unwrap_err(), FlagError::Help, "{args:?}");
        }
        assert!(parse_strs(&["x", "-h"]).is_ok());
        let defined = |name: &str| (name == "h").then_some(((), Kind::Bool));
        assert!(parse(&["-h".to_string()], defined).is_ok());
    }

    #[test]
    fn bad_flags_are_reported_in_gos_words() {
        assert_eq!(
            refused(&["--bogus"]),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(
            refused(&["-bogus=1"]),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(refused(&["-tag"]), "flag needs an argument: -tag");
        assert_eq!(refused(&["--timeout"]), "flag needs an argument: -timeout");
        assert_eq!(refused(&["---x"]), "bad flag syntax: ---x");
        assert_eq!(refused(&["-=x"]), "bad flag syntax: -=x");
        assert_eq!(refused(&["--=x"]), "bad flag syntax: --=x");
        assert_eq!(
            refused(&["-coalesce=maybe"]),
            "invalid boolean value \"maybe\" for -coalesce: parse error"
        );
        assert_eq!(
            refused(&["--coalesce="]),
            "invalid boolean value \"\" for -coalesce: parse error"
        );
        assert_eq!(
            refused(&["-retries", "abc"]),
            "invalid value \"abc\" for flag -retries: parse error"
        );
        assert_eq!(
            refused(&["-count=-1"]),
            "invalid value \"-1\" for flag -count: parse error"
        );
        assert_eq!(
            refused(&["-count=99999999999999999999999"]),
            "invalid value \"99999999999999999999999\" for flag -count: value out of range"
        );
        assert_eq!(
            refused(&["-timeout", "soon"]),
            "invalid value \"soon\" for flag -timeout: parse error"
        );
        // The value is quoted as Go's %q quotes it.
        assert_eq!(
            refused(&["-retries=a\"b\n"]),
            "invalid value \"a\\\"b\\n\" for flag -retries: parse error"
        );
    }

    #[test]
    fn help_anywhere_before_a_double_dash_is_a_help_request() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(help_requested(&args(&["x", "-h"])));
        assert!(help_requested(&args(&["-help"])));
        assert!(!help_requested(&args(&["--", "-help"])));
        assert!(!help_requested(&args(&["-hx"])));
    }
}
