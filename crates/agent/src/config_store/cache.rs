//! `-config-store-cache FILE`: the last snapshot applied, so an agent whose store is down
//! at start starts as it last ran. Written whole (a temporary file beside it, fsync,
//! rename): a crash leaves the old copy or the new one, never half of one. Readable only
//! by its owner, as tags may be sensitive (the tags file is made so too).

use super::Snapshot;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use tracing::warn;

/// Keep `snapshot` in the cache, if there is one. A failure is logged, not fatal: the
/// agent runs on, only a later start without a store would miss it.
pub(super) fn save(path: Option<&Path>, snapshot: &Snapshot) {
    let Some(path) = path else { return };
    if let Err(e) = write(path, snapshot) {
        warn!(
            "config store: cannot write the cache {}: {e}",
            path.display()
        );
    }
}

pub(super) fn load(path: &Path) -> Result<Snapshot, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read the cache {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| format!("cannot decode the cache {}: {e}", path.display()))
}

fn write(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(snapshot).expect("a snapshot always serialises");
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    // The rename itself is durable once the directory is synced.
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_store::Rendered;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_saved_snapshot_loads_back_and_only_its_owner_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.json");
        let snapshot = Snapshot {
            documents: vec![Rendered {
                prefix: "/serf/web".into(),
                index: 7,
                document: serde_json::json!({"tags": {"role": "web"}}),
            }],
            node: "a1".into(),
            node_tags: [("hostid".to_string(), "10084".to_string())].into(),
            node_tags_index: 7,
        };
        save(Some(&path), &snapshot);
        assert_eq!(load(&path).unwrap(), snapshot);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(load(&dir.path().join("missing.json")).is_err());
    }
}
