//! A member's files are private, as etcd keeps them: the data dir and every directory in it
//! 0700, every file 0600 (etcd's `fileutil.PrivateDirMode`/`PrivateFileMode`). The log, the
//! snapshots and the identity are written by several crates; one umask for the serving
//! process covers them all, and whatever is added later, without a mode at each call site.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every file and directory this process creates from now on gets no group or other bits.
pub fn keep_new_files_private() {
    // SAFETY: umask(2) cannot fail and touches no memory; it is called once at start-up,
    // before the threads that create files run.
    unsafe {
        libc::umask(0o077);
    }
}

/// A data dir made before (by an older musubi, or by hand) may be open to others: say so,
/// as etcd does, but leave it as it is (its owner may have reasons).
pub fn warn_if_open_to_others(data_dir: &Path) {
    let Ok(meta) = std::fs::metadata(data_dir) else {
        return;
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            "data dir {} has permission {mode:o}; 700 keeps the member's data from other users",
            data_dir.display()
        );
    }
}
