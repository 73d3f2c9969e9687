//! `musubi snapshot status FILE`: etcdctl 3.4's columns (hash, revision, total keys, total
//! size) in its three forms, read from a musubi snapshot's header after its digest is
//! checked. etcd's hash is a CRC of its database; musubi's is the first four bytes of the
//! file's SHA-256, which identifies the file as well.

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
        Format::Simple => println!("{hash:x}, {revision}, {keys}, {}", go_bytes(size as u64)),
        Format::Json => println!(
            "{{\"hash\":{hash},\"revision\":{revision},\"totalKey\":{keys},\"totalSize\":{size}}}"
        ),
        Format::Table => print_table(
            &[
                "HASH".into(),
                "REVISION".into(),
                "TOTAL KEYS".into(),
                "TOTAL SIZE".into(),
            ],
            &[
                format!("{hash:x}"),
                revision.to_string(),
                keys.to_string(),
                go_bytes(size as u64),
            ],
        ),
    }
    Ok(())
}

/// etcdctl's table: bordered, the header row centred and the data row right-aligned.
fn print_table(header: &[String], row: &[String]) {
    let widths: Vec<usize> = header
        .iter()
        .zip(row)
        .map(|(h, r)| h.len().max(r.len()))
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+";
    let titles: String = header
        .iter()
        .zip(&widths)
        .map(|(c, w)| format!("| {c:^w$} "))
        .collect::<String>()
        + "|";
    let values: String = row
        .iter()
        .zip(&widths)
        .map(|(c, w)| format!("| {c:>w$} "))
        .collect::<String>()
        + "|";
    println!("{rule}\n{titles}\n{rule}\n{values}\n{rule}");
}

/// go-humanize's `Bytes`: SI units, one decimal below 10.
fn go_bytes(size: u64) -> String {
    if size < 10 {
        return format!("{size} B");
    }
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let exp = ((size as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = (size as f64 / 1000f64.powi(exp as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exp])
    } else {
        format!("{value:.0} {}", UNITS[exp])
    }
}

#[cfg(test)]
mod tests {
    use super::go_bytes;

    #[test]
    fn sizes_read_as_go_humanize_prints_them() {
        assert_eq!(go_bytes(82), "82 B");
        assert_eq!(go_bytes(1234), "1.2 kB");
        assert_eq!(go_bytes(20_480), "20 kB");
        assert_eq!(go_bytes(25_210_880), "25 MB");
    }
}
