//! `musubi snapshot save FILE`: what `etcdctl snapshot save` does, checked harder.
//!
//! 1. one endpoint only (a snapshot is one member's state), as etcdctl insists;
//! 2. the `Maintenance.Snapshot` stream is written to `FILE.part` as it arrives;
//! 3. the total must be `512·k + 32` bytes (etcdctl's only check) and, beyond etcdctl, end
//!    with the SHA-256 of what precedes it and be a musubi snapshot;
//! 4. fsync, rename to FILE, fsync the directory: FILE is whole or absent.

use super::progress::Progress;
use clap::Args;
use musubi_proto::etcdserverpb::SnapshotRequest;
use musubi_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use musubi_store::backup;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::Endpoint;

#[derive(Args)]
pub struct SaveArgs {
    /// Where to write the snapshot.
    file: PathBuf,
    /// The one member to take the snapshot from (`host:port` or a URL).
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    endpoints: Vec<String>,
    /// How long to wait for the connection.
    #[arg(long, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s",
          value_parser = crate::duration::parse_or_seconds)]
    dial_timeout: Duration,
}

pub fn run(args: SaveArgs) -> Result<(), String> {
    let [endpoint] = args.endpoints.as_slice() else {
        return Err(format!(
            "snapshot must be requested to one selected node, not multiple [{}]",
            args.endpoints.join(" ")
        ));
    };
    let part = part_path(&args.file);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime starts");
    let saved = runtime.block_on(fetch(endpoint, args.dial_timeout, &part));
    let result = saved.and_then(|size| finish(&part, &args.file, size));
    if result.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    result?;
    println!("Snapshot saved at {}", args.file.display());
    Ok(())
}

fn part_path(file: &Path) -> PathBuf {
    let mut part = file.as_os_str().to_owned();
    part.push(".part");
    PathBuf::from(part)
}

/// Streams the snapshot into `part` and returns its size.
async fn fetch(endpoint: &str, dial_timeout: Duration, part: &Path) -> Result<u64, String> {
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or(endpoint)
        .trim_end_matches('/');
    if authority.contains("://") {
        return Err(format!(
            "{endpoint}: only plaintext endpoints are supported by musubi snapshot save (use etcdctl for TLS)"
        ));
    }
    let channel = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| format!("bad endpoint {endpoint}: {e}"))?
        .connect_timeout(dial_timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    let mut client = MaintenanceClient::new(channel).max_decoding_message_size(usize::MAX);
    let mut stream = client
        .snapshot(SnapshotRequest {})
        .await
        .map_err(|s| s.message().to_string())?
        .into_inner();
    let mut out = File::create(part).map_err(|e| format!("{}: {e}", part.display()))?;
    let progress = Progress::bytes("fetching snapshot", None);
    let mut size = 0u64;
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| s.message().to_string())?
    {
        out.write_all(&chunk.blob)
            .map_err(|e| format!("{}: {e}", part.display()))?;
        size += chunk.blob.len() as u64;
        // The digest comes after the body, which `remaining_bytes` counts down.
        if chunk.remaining_bytes > 0 {
            progress.set_total(size + chunk.remaining_bytes + backup::DIGEST as u64);
        }
        progress.advance(chunk.blob.len() as u64);
    }
    progress.finish();
    out.sync_all()
        .map_err(|e| format!("{}: {e}", part.display()))?;
    Ok(size)
}

/// Checks the saved bytes, then puts them in place durably.
fn finish(part: &Path, file: &Path, size: u64) -> Result<(), String> {
    if !backup::has_checksum(size as usize) {
        return Err(format!("sha256 checksum not found [bytes: {size}]"));
    }
    let bytes = std::fs::read(part).map_err(|e| format!("{}: {e}", part.display()))?;
    backup::decode(&bytes, true).map_err(|e| e.to_string())?;
    std::fs::rename(part, file).map_err(|e| format!("{}: {e}", file.display()))?;
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}
