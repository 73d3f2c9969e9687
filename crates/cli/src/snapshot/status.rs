//! `musubi snapshot status FILE`: etcdctl 3.4's columns (hash, revision, total keys, total
//! size) in its three forms, read from a musubi snapshot's header after its digest is
//! checked. etcd's hash is a CRC of its database; musubi's is the first four bytes of the
//! file's SHA-256, which identifies the file as well.

use crate::v3::table;
use clap::{Args, ValueEnum};
use musubi_store::backup;
use std::path::PathBuf;

#[derive(Args)]
pub struct StatusArgs {
    file: PathBuf,
    /// Output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
    write_out: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Simple,
    Table,
    Json,
}

pub fn run(args: StatusArgs) -> Result<(), String> {
    let file = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let backup = backup::decode(&file, true).map_err(|e| e.to_string())?;
    let digest = &file[file.len() - backup::DIGEST..];
    let hash = u32::from_be_bytes(digest[..4].try_into().expect("4 bytes"));
    let (revision, keys, size) = (backup.header.revision, backup.header.keys, file.len());
    match args.write_out {
        Format::Simple => println!(
            "{hash:x}, {revision}, {keys}, {}",
            crate::humanize::bytes(size as u64)
        ),
        Format::Json => println!(
            "{{\"hash\":{hash},\"revision\":{revision},\"totalKey\":{keys},\"totalSize\":{size}}}"
        ),
        Format::Table => print!(
            "{}",
            table::render(
                &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                &[vec![
                    format!("{hash:x}"),
                    revision.to_string(),
                    keys.to_string(),
                    crate::humanize::bytes(size as u64),
                ]],
            )
        ),
    }
    Ok(())
}
