//! `musubi members`, `musubi query`, ...: Serf's CLI commands, under musubi's name, talking
//! Serf's RPC protocol to a musubi agent or a Serf agent. Flags, output and exit codes are
//! Serf's (docs/agent-cli.md); `-format json` is accepted by every command.
//!
//! Exit codes: 0 success; 1 for a usage error, an agent that cannot be reached or refuses,
//! and the command-specific failures Serf reports with 1 (a key operation some node failed,
//! a reachability test with missing acks, a monitor the agent ended). Help (`-h`) exits 0.

mod event;
mod flags;
mod go_syntax;
mod info;
mod keygen;
mod keys;
mod members;
mod membership;
mod monitor;
mod query;
mod reachability;
mod rtt;
mod tags;
mod text;

use flags::{Flag, Kind, Parsed};
use musubi_gocompat::flag::FlagError;
use musubi_serf_rpc::client::RpcClient;
use std::process::ExitCode;
use text::say;

/// One command: its name, what `musubi --help` says of it, its usage text and own flags.
pub struct Verb {
    pub name: &'static str,
    pub about: &'static str,
    synopsis: &'static str,
    flags: &'static [Flag],
    /// Whether it talks to an agent (takes `-rpc-addr` and `-rpc-auth`).
    uses_rpc: bool,
}

pub const VERBS: &[Verb] = &[
    members::VERB,
    membership::JOIN,
    membership::LEAVE,
    membership::FORCE_LEAVE,
    event::VERB,
    query::VERB,
    tags::VERB,
    keys::VERB,
    info::VERB,
    monitor::VERB,
    rtt::VERB,
    reachability::VERB,
    keygen::VERB,
];

const RPC_ADDR: Flag = Flag {
    name: "rpc-addr",
    kind: Kind::Text,
    value_hint: "127.0.0.1:7373",
    help: "The agent's RPC address (default: $SERF_RPC_ADDR, else 127.0.0.1:7373).",
};
const RPC_AUTH: Flag = Flag {
    name: "rpc-auth",
    kind: Kind::Text,
    value_hint: "\"\"",
    help: "The agent's RPC auth token (default: $SERF_RPC_AUTH).",
};
const FORMAT: Flag = Flag {
    name: "format",
    kind: Kind::Text,
    value_hint: "text",
    help: "Output format: text (the default) or json.",
};

const DEFAULT_RPC_ADDR: &str = "127.0.0.1:7373";

/// What every command receives: its parsed flags and where its agent is.
pub struct Invocation {
    pub flags: Parsed,
    pub rpc_addr: String,
    pub rpc_auth: String,
    pub format: Format,
    verb: &'static Verb,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    /// Anything else, kept for the error message, which each command words as Serf does.
    Unknown(String),
}

impl Invocation {
    /// Connect to the agent, or print Serf's message and give the exit code to return.
    async fn connect(&self) -> Result<RpcClient, u8> {
        RpcClient::connect(&self.rpc_addr, &self.rpc_auth)
            .await
            .map_err(|e| fail(&format!("Error connecting to Serf agent: {e}")))
    }

    /// The usage text after a message, as Serf prints a misuse: message, blank, usage.
    fn misuse(&self, message: &str) -> u8 {
        say(message);
        say("");
        say(&usage(self.verb));
        1
    }

    /// Commands Serf gives no `-format` refuse an unknown one before doing anything.
    fn check_format(&self) -> Result<(), u8> {
        match &self.format {
            Format::Unknown(other) => Err(fail(&format!("Invalid format: {other}"))),
            _ => Ok(()),
        }
    }
}

/// Print an error line (on stdout, as Serf does) and return exit code 1.
fn fail(message: &str) -> u8 {
    say(message);
    1
}

pub fn find(name: &str) -> Option<&'static Verb> {
    VERBS.iter().find(|verb| verb.name == name)
}

/// Run `musubi VERB ARGS` and return its exit code.
pub fn run(verb: &'static Verb, args: Vec<String>) -> ExitCode {
    if musubi_gocompat::flag::help_requested(&args) {
        eprintln!("{}", usage(verb));
        return ExitCode::SUCCESS;
    }
    if verb.name == keygen::VERB.name {
        // Serf's keygen reads no flags and ignores its arguments; only -format matters here.
        return ExitCode::from(keygen::run(&args));
    }
    let mut all_flags: Vec<&Flag> = verb.flags.iter().collect();
    if verb.uses_rpc {
        all_flags.extend([&RPC_ADDR, &RPC_AUTH]);
    }
    all_flags.push(&FORMAT);
    // As serf: Go's message on stderr, then the usage on stdout, exit 1 (`-help=false`,
    // Go's help request that Serf's framework does not see, is the usage alone).
    let flags = match flags::parse(&all_flags, &args) {
        Ok(flags) => flags,
        Err(e) => {
            if e != FlagError::Help {
                eprintln!("{e}");
            }
            say(&usage(verb));
            return ExitCode::from(1);
        }
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let rpc_addr = flags
        .text("rpc-addr")
        .map(str::to_string)
        .or_else(|| env("SERF_RPC_ADDR"))
        .unwrap_or_else(|| DEFAULT_RPC_ADDR.to_string());
    let rpc_auth = flags
        .text("rpc-auth")
        .map(str::to_string)
        .or_else(|| env("SERF_RPC_AUTH"))
        .unwrap_or_default();
    let format = match flags.text("format").unwrap_or("text") {
        "text" => Format::Text,
        "json" => Format::Json,
        other => Format::Unknown(other.to_string()),
    };
    let invocation = Invocation {
        flags,
        rpc_addr,
        rpc_auth,
        format,
        verb,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    ExitCode::from(runtime.block_on(dispatch(invocation)))
}

async fn dispatch(invocation: Invocation) -> u8 {
    match invocation.verb.name {
        "members" => members::run(invocation).await,
        "join" => membership::join(invocation).await,
        "leave" => membership::leave(invocation).await,
        "force-leave" => membership::force_leave(invocation).await,
        "event" => event::run(invocation).await,
        "query" => query::run(invocation).await,
        "tags" => tags::run(invocation).await,
        "keys" => keys::run(invocation).await,
        "info" => info::run(invocation).await,
        "monitor" => monitor::run(invocation).await,
        "rtt" => rtt::run(invocation).await,
        "reachability" => reachability::run(invocation).await,
        other => unreachable!("{other} is in VERBS but has no runner"),
    }
}

/// `Usage: musubi NAME SYNOPSIS`, what the command does, then its flags.
pub fn usage(verb: &Verb) -> String {
    let command = format!("musubi {} {}", verb.name, verb.synopsis);
    let mut text = format!(
        "Usage: {}\n\n  {}\n\nOptions:\n",
        command.trim_end(),
        verb.about
    );
    let rpc: &[&Flag] = if verb.uses_rpc {
        &[&RPC_ADDR, &RPC_AUTH]
    } else {
        &[]
    };
    let listed = verb
        .flags
        .iter()
        .chain(rpc.iter().copied())
        .chain([&FORMAT]);
    for flag in listed {
        let spelled = match (flag.kind, flag.value_hint) {
            (Kind::Bool, _) | (_, "") => format!("-{}", flag.name),
            (_, hint) => format!("-{}={hint}", flag.name),
        };
        text.push_str(&format!("\n  {spelled:<26}{}", flag.help));
    }
    text
}

/// `key=value` for `-tag` and `tags -set`; Serf's message for anything else.
fn split_tag(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("Error: Invalid tag: '{text}'"))
}
