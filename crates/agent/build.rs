//! Records the version of the Rust compiler building the agent, for `serf info`'s
//! `runtime.version` (Serf reports the Go release that built it there).

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        // "rustc 1.91.0 (f8297e351 2025-10-28)" -> "1.91.0"
        .and_then(|text| text.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=MUSUBI_RUSTC_VERSION={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
