//! `musubi keygen`: a fresh random 32-byte key (AES-256) in base64, for `-encrypt`,
//! `keys -install` and keyring files. Needs no agent.

use super::Verb;
use super::text::{go_json, say};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use serde_json::json;

pub const VERB: Verb = Verb {
    name: "keygen",
    about: "Prints a new random encryption key for -encrypt and keys -install.",
    synopsis: "",
    flags: &[],
    uses_rpc: false,
};

const KEY_BYTES: usize = 32;

/// Serf's keygen reads no flags; we read `-format json` and, like it, ignore the rest.
pub fn run(args: &[String]) -> u8 {
    let json = args
        .windows(2)
        .any(|w| is_format_flag(&w[0]) && w[1] == "json")
        || args
            .iter()
            .any(|a| matches!(a.as_str(), "-format=json" | "--format=json"));
    let mut key = [0u8; KEY_BYTES];
    // rand's thread RNG is a CSPRNG seeded from the OS, as Go's crypto/rand reads the OS.
    rand::rng().fill_bytes(&mut key);
    let encoded = STANDARD.encode(key);
    if json {
        say(&go_json(&json!({ "key": encoded })));
    } else {
        say(&encoded);
    }
    0
}

fn is_format_flag(arg: &str) -> bool {
    arg == "-format" || arg == "--format"
}
