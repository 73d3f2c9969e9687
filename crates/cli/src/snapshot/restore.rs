//! `musubi snapshot restore FILE`: etcdctl 3.4's flags, musubi's data dir.
//!
//! The member is named with `musubi serve`'s flags, and only the ones given are passed on,
//! so their defaults are serve's (`--name default`, `--data-dir <name>.musubi`, peer URL
//! `http://127.0.0.1:2380`, token `etcd-cluster`): start the member with the same flags
//! and it serves as the member the data dir was written for (`musubi_server::restore`).

use super::progress::Progress;
use clap::Args;
use std::io::Read;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct RestoreArgs {
    /// The snapshot file (`musubi snapshot save` or `etcdctl snapshot save` from musubi).
    file: PathBuf,
    /// The data dir to create (it must be missing or empty).
    #[arg(long)]
    data_dir: Option<String>,
    /// This member's name in the new cluster.
    #[arg(long)]
    name: Option<String>,
    /// The new cluster's members, `name=peerURL,...`.
    #[arg(long)]
    initial_cluster: Option<String>,
    /// The new cluster's token (with the members, it makes the new cluster's ID).
    #[arg(long)]
    initial_cluster_token: Option<String>,
    /// Where the other members reach this one; must match its `--initial-cluster` entry.
    #[arg(long)]
    initial_advertise_peer_urls: Option<String>,
    /// Do not check the file's SHA-256.
    #[arg(long)]
    skip_hash_check: bool,
}

pub fn run(args: RestoreArgs) -> Result<(), String> {
    let file = read(&args.file)?;
    let given = [
        ("--data-dir", &args.data_dir),
        ("--name", &args.name),
        ("--initial-cluster", &args.initial_cluster),
        ("--initial-cluster-token", &args.initial_cluster_token),
        (
            "--initial-advertise-peer-urls",
            &args.initial_advertise_peer_urls,
        ),
    ];
    let serve_flags: Vec<String> = given
        .into_iter()
        .filter_map(|(flag, value)| value.as_ref().map(|v| [flag.to_string(), v.clone()]))
        .flatten()
        .collect();
    let restored = musubi_server::restore::restore(&file, &serve_flags, !args.skip_hash_check)
        .map_err(|e| e.to_string())?;
    let header = &restored.header;
    println!(
        "restored snapshot {} (revision {}, compacted at {}, {} keys, {} leases) into {}",
        args.file.display(),
        header.revision,
        header.compact_revision,
        header.keys,
        header.leases,
        restored.data_dir.display()
    );
    for (id, name, urls) in &restored.members {
        let me = if *id == restored.identity.member_id {
            " (this member)"
        } else {
            ""
        };
        println!(
            "added member {id:x} {name} {} to new cluster {:x}{me}",
            urls.join(","),
            restored.identity.cluster_id
        );
    }
    Ok(())
}

/// The whole file, with a progress bar on a terminal.
fn read(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(fail)?;
    let size = file.metadata().map_err(fail)?.len();
    let progress = Progress::bytes("reading snapshot", Some(size));
    let mut bytes = Vec::with_capacity(size as usize);
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(fail)?;
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
        progress.advance(n as u64);
    }
    progress.finish();
    Ok(bytes)
}
