//! Serf's commands' flag tables and their parsed values. The parsing is Go's `flag`
//! package's (`musubi_gocompat::flag`), which Serf's commands use and scripts rely on; a
//! bad flag is reported in its words on stderr.

pub use musubi_gocompat::flag::Kind;
use musubi_gocompat::flag::{self, FlagError};
use musubi_gocompat::strconv::{parse_bool, parse_int};
use std::time::Duration;

pub struct Flag {
    pub name: &'static str,
    /// `Kind::Text` for the repeatable flags too: each command reads them with `list`.
    pub kind: Kind,
    /// For the usage text: `-name=<regexp>` shows `<regexp>`; empty for booleans.
    pub value_hint: &'static str,
    pub help: &'static str,
}

/// The values given to a command's flags, by name, and the arguments after them.
#[derive(Debug)]
pub struct Parsed {
    values: flag::Parsed<&'static str>,
    /// The arguments after the flags.
    pub args: Vec<String>,
}

impl Parsed {
    pub fn text(&self, name: &'static str) -> Option<&str> {
        self.values.last(name)
    }

    pub fn list(&self, name: &'static str) -> Vec<String> {
        self.values.all(name).map(str::to_string).collect()
    }

    pub fn bool(&self, name: &'static str, default: bool) -> bool {
        self.text(name).and_then(parse_bool).unwrap_or(default)
    }

    pub fn duration(&self, name: &'static str) -> Option<Duration> {
        self.text(name).and_then(|v| crate::duration::parse(v).ok())
    }

    pub fn int(&self, name: &'static str) -> Option<i64> {
        self.text(name).and_then(|v| parse_int(v).ok())
    }
}

/// Parse `args` against `flags` as Go's `flag` does.
pub fn parse(flags: &[&Flag], args: &[String]) -> Result<Parsed, FlagError> {
    let lookup = |name: &str| {
        let flag = flags.iter().find(|f| f.name == name)?;
        Some((flag.name, flag.kind))
    };
    let mut values = flag::parse(args, lookup)?;
    Ok(Parsed {
        args: std::mem::take(&mut values.args),
        values,
    })
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
    const TAG: Flag = flag("tag", Kind::Text);
    const RELAY: Flag = flag("relay-factor", Kind::Int);

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_commands_flags_are_read_by_name_after_gos_parsing() {
        let flags = [&COALESCE, &TAG, &RELAY];
        let parsed = parse(
            &flags,
            &args(&[
                "--coalesce=false",
                "-tag",
                "a=b",
                "-tag=c=d",
                "-relay-factor=0x2",
                "name",
                "-tag",
                "x",
            ]),
        )
        .unwrap();
        assert!(!parsed.bool("coalesce", true));
        assert_eq!(parsed.list("tag"), ["a=b", "c=d"]);
        assert_eq!(parsed.int("relay-factor"), Some(2));
        assert_eq!(parsed.args, ["name", "-tag", "x"]);
        let refused = parse(&flags, &args(&["-bogus"])).unwrap_err();
        assert_eq!(refused.to_string(), "flag provided but not defined: -bogus");
    }
}
