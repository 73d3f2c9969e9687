//! Putting a rendered document in place: a temporary file in the target's directory,
//! written and fsynced, given the mode, checked by `--check-cmd`, renamed over the target
//! (readers see the old file or the new, never a part), the directory fsynced; then
//! `--reload-cmd`. With `--backup`, a failed reload puts the old bytes back the same way.

use super::InstallArgs;
use super::hook::Hook;
use crate::toolkit::ToolError;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Installer {
    pub out: PathBuf,
    mode: Option<u32>,
    check: Option<Hook>,
    reload: Option<Hook>,
    backup: bool,
    timeout: std::time::Duration,
}

/// What installing did.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// The file already held these bytes: nothing written, nothing reloaded.
    Unchanged,
    /// Written (and reloaded, if asked).
    Written,
}

impl Installer {
    pub fn new(out: PathBuf, args: &InstallArgs) -> Installer {
        Installer {
            out,
            mode: args.mode,
            check: args.check_cmd.as_deref().map(|c| Hook::new(c, args.shell)),
            reload: args.reload_cmd.as_deref().map(|c| Hook::new(c, args.shell)),
            backup: args.backup,
            timeout: args.hook_timeout,
        }
    }

    /// The file's current bytes, `None` if it does not exist.
    pub fn current(&self) -> Result<Option<Vec<u8>>, ToolError> {
        match fs::read(&self.out) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(local(&self.out, e)),
        }
    }

    /// Install `bytes` unless the file holds them already; reload after writing.
    pub async fn install(&self, bytes: &[u8]) -> Result<Installed, ToolError> {
        let old = self.current()?;
        if old.as_deref() == Some(bytes) {
            return Ok(Installed::Unchanged);
        }
        self.install_checked(bytes).await?;
        let Some(reload) = &self.reload else {
            return Ok(Installed::Written);
        };
        match reload.run(Some(&self.out), self.timeout).await {
            Ok(()) => Ok(Installed::Written),
            Err(why) => {
                let mut message = format!("reload failed: {why}");
                if self.backup {
                    match &old {
                        Some(old) => self.write_atomically(old)?,
                        None => fs::remove_file(&self.out).map_err(|e| local(&self.out, e))?,
                    }
                    message.push_str("; the previous file was put back");
                    // The program is told about its old file again.
                    if let Err(again) = reload.run(Some(&self.out), self.timeout).await {
                        message.push_str(&format!(" (its reload failed too: {again})"));
                    }
                }
                Err(ToolError::hook_failed(message))
            }
        }
    }

    async fn install_checked(&self, bytes: &[u8]) -> Result<(), ToolError> {
        let temp = self.write_temp(bytes)?;
        if let Some(check) = &self.check
            && let Err(why) = check.run(Some(&temp), self.timeout).await
        {
            let _ = fs::remove_file(&temp);
            return Err(ToolError::hook_failed(format!(
                "check failed, {} kept: {why}",
                self.out.display()
            )));
        }
        self.rename_into_place(&temp)
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<(), ToolError> {
        let temp = self.write_temp(bytes)?;
        self.rename_into_place(&temp)
    }

    /// `.<name>.musubi-<pid>` beside the target, so the rename stays on one filesystem.
    fn write_temp(&self, bytes: &[u8]) -> Result<PathBuf, ToolError> {
        let name = self
            .out
            .file_name()
            .ok_or_else(|| ToolError::usage(format!("--out {}: not a file", self.out.display())))?;
        let temp = self.out.with_file_name(format!(
            ".{}.musubi-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let mode = match (self.mode, fs::metadata(&self.out)) {
            (Some(mode), _) => mode,
            (None, Ok(meta)) => meta.permissions().mode() & 0o7777,
            (None, Err(_)) => 0o644,
        };
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temp)?;
            file.write_all(bytes)?;
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            local(&temp, e)
        })?;
        Ok(temp)
    }

    fn rename_into_place(&self, temp: &Path) -> Result<(), ToolError> {
        fs::rename(temp, &self.out).map_err(|e| {
            let _ = fs::remove_file(temp);
            local(&self.out, e)
        })?;
        // The rename is durable once the directory is.
        let dir = match self.out.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| local(dir, e))
    }
}

/// A local file failure: the document could not be put in place.
fn local(path: &Path, error: std::io::Error) -> ToolError {
    ToolError::data(format!("{}: {error}", path.display()))
}
