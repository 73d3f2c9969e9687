//! `musubi info`: the agent's `stats` sections (agent, runtime, serf, tags, ...).

use super::text::{go_json, say};
use super::{Format, Invocation, Verb, fail};
use musubi_serf_rpc::client::messages::Stats;

pub const VERB: Verb = Verb {
    name: "info",
    about: "Shows the agent's own statistics, for operators and for debugging.",
    synopsis: "[options]",
    flags: &[],
    uses_rpc: true,
};

pub async fn run(invocation: Invocation) -> u8 {
    let mut client = match invocation.connect().await {
        Ok(client) => client,
        Err(code) => return code,
    };
    let stats: Stats = match client.call_for::<(), _>("stats", None).await {
        Ok(stats) => stats,
        Err(e) => return fail(&format!("Error querying agent: {e}")),
    };
    match &invocation.format {
        Format::Text => {
            for (section, values) in &stats {
                say(&format!("{section}:"));
                for (key, value) in values {
                    say(&format!("\t{key} = {value}"));
                }
            }
        }
        Format::Json => say(&go_json(&stats)),
        Format::Unknown(other) => {
            return fail(&format!("Encoding error: Invalid output format {other:?}"));
        }
    }
    0
}
