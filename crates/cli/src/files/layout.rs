//! What a share is in the store (docs/files.md): under `/_musubi/files/<share>/`, immutable
//! content-addressed `blobs/<sha256>`, `manifests/<sha256>` naming every file's chunks,
//! `history/<rev>`, and the one `HEAD` key whose compare-and-swap publishes a revision.
//! Every value is ASCII (JSON or unpadded base64url), so v2, v3 and curl read the same.

use super::ToolError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The layout's version, in `HEAD` and manifests: a reader refuses what it does not know.
pub const VERSION: u32 = 1;

/// The keys of one share.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(share: &str) -> Result<Keys, ToolError> {
        let valid = !share.is_empty()
            && share
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !share.starts_with('.');
        if !valid {
            return Err(ToolError::usage(format!(
                "invalid share name {share:?}: letters, digits, '-', '_' and '.' only"
            )));
        }
        Ok(Keys {
            prefix: format!("/_musubi/files/{share}/"),
        })
    }

    pub fn head(&self) -> String {
        format!("{}HEAD", self.prefix)
    }

    pub fn dir(&self, kind: Kind) -> String {
        format!("{}{}", self.prefix, kind.name())
    }

    pub fn key(&self, kind: Kind, name: &str) -> String {
        format!("{}{}/{name}", self.prefix, kind.name())
    }
}

/// The directories of a share.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Blobs,
    Manifests,
    History,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Blobs => "blobs",
            Kind::Manifests => "manifests",
            Kind::History => "history",
        }
    }
}

/// The value of `HEAD` (and of `history/<rev>`): one published revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub v: u32,
    pub rev: u64,
    /// `sha256:<hex>` of the manifest's bytes.
    pub root: String,
    /// The root this revision was pushed on; `None` for the first.
    pub parent: Option<String>,
    pub by: String,
    #[serde(default)]
    pub msg: String,
    pub time: String,
}

impl Head {
    pub fn parse(text: &str) -> Result<Head, ToolError> {
        let head: Head = serde_json::from_str(text)
            .map_err(|e| ToolError::data(format!("HEAD is not a files revision: {e}")))?;
        if head.v != VERSION {
            return Err(ToolError::data(format!(
                "HEAD has layout version {}, this musubi reads {VERSION}",
                head.v
            )));
        }
        root_hex(&head.root)?;
        Ok(head)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a head serialises")
    }

    /// The manifest's hash without the `sha256:` scheme, as its key names it.
    pub fn root_hex(&self) -> &str {
        root_hex(&self.root).expect("checked when parsed or made")
    }
}

fn root_hex(root: &str) -> Result<&str, ToolError> {
    root.strip_prefix("sha256:")
        .filter(|hex| is_hex_digest(hex))
        .ok_or_else(|| ToolError::data(format!("bad root {root:?}")))
}

/// One regular file of a revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Permission bits in octal, e.g. `0755`.
    pub mode: String,
    pub size: u64,
    pub sha256: String,
    /// The blobs whose contents, in order, are the file.
    pub chunks: Vec<String>,
}

/// Every file and symbolic link of one revision. Its serialisation is canonical (sorted
/// maps, no whitespace), so the same tree always has the same root.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub v: u32,
    pub files: BTreeMap<String, FileEntry>,
    #[serde(default)]
    pub links: BTreeMap<String, String>,
}

impl Manifest {
    pub fn new() -> Manifest {
        Manifest {
            v: VERSION,
            ..Manifest::default()
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a manifest serialises")
    }

    /// `sha256:<hex>` of the canonical bytes.
    pub fn root(&self) -> String {
        format!("sha256:{}", sha256_hex(self.to_json().as_bytes()))
    }

    /// The manifest stored under `manifests/<hex>`, checked against its name and for paths
    /// that would leave the directory.
    pub fn parse(text: &str, hex: &str) -> Result<Manifest, ToolError> {
        if sha256_hex(text.as_bytes()) != hex {
            return Err(ToolError::data(format!(
                "manifest {hex} does not match its hash"
            )));
        }
        let manifest: Manifest = serde_json::from_str(text)
            .map_err(|e| ToolError::data(format!("manifest {hex} is not a manifest: {e}")))?;
        if manifest.v != VERSION {
            return Err(ToolError::data(format!(
                "manifest {hex} has layout version {}",
                manifest.v
            )));
        }
        for path in manifest.files.keys().chain(manifest.links.keys()) {
            check_path(path)?;
        }
        for entry in manifest.files.values() {
            parse_mode(&entry.mode)?;
            if !is_hex_digest(&entry.sha256) || !entry.chunks.iter().all(|c| is_hex_digest(c)) {
                return Err(ToolError::data(format!("manifest {hex} has a bad hash")));
            }
        }
        Ok(manifest)
    }

    /// Every blob the manifest references.
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        self.files
            .values()
            .flat_map(|f| f.chunks.iter().map(String::as_str))
    }
}

/// A path a share may hold: relative, `/`-separated, no `.`/`..`/empty components, and not
/// inside the state directory. Anything else in a manifest is refused as bad data, so a
/// share can never write outside the directory it is pulled into.
pub fn check_path(path: &str) -> Result<(), ToolError> {
    let ok = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
        && path.split('/').next() != Some(super::local::STATE_DIR);
    if ok {
        Ok(())
    } else {
        Err(ToolError::data(format!(
            "unsafe path {path:?} in the share"
        )))
    }
}

pub fn format_mode(mode: u32) -> String {
    format!("{:04o}", mode & 0o777)
}

pub fn parse_mode(text: &str) -> Result<u32, ToolError> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| ToolError::data(format!("bad file mode {text:?}")))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A blob's value: base64url without padding, which a v2 form body carries unescaped.
pub fn encode_blob(raw: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(raw)
}

/// A blob's bytes, checked against the hash that names it.
pub fn decode_blob(value: &[u8], hex: &str) -> Result<Vec<u8>, ToolError> {
    let raw = URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| ToolError::data(format!("blob {hex} is not base64url")))?;
    if sha256_hex(&raw) != hex {
        return Err(ToolError::data(format!(
            "blob {hex} does not match its hash"
        )));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_through_its_own_hash() {
        let mut manifest = Manifest::new();
        manifest.files.insert(
            "bin/ntp".into(),
            FileEntry {
                mode: "0755".into(),
                size: 3,
                sha256: sha256_hex(b"abc"),
                chunks: vec![sha256_hex(b"abc")],
            },
        );
        manifest.links.insert("current".into(), "bin".into());
        let text = manifest.to_json();
        let hex = manifest.root().trim_start_matches("sha256:").to_string();
        assert_eq!(Manifest::parse(&text, &hex).unwrap(), manifest);
        assert_eq!(
            Manifest::parse(&text, &sha256_hex(b"x")).unwrap_err().exit,
            super::super::ToolExit::Data
        );
    }

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "./a",
            ".musubi-files/state",
            "a/",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
        for good in ["a", "bin/ntp", "config/.hidden", "a/.musubi-files"] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_blob_is_checked_against_its_name() {
        let value = encode_blob(b"hello");
        assert!(!value.contains('=') && !value.contains('+') && !value.contains('/'));
        assert_eq!(
            decode_blob(value.as_bytes(), &sha256_hex(b"hello")).unwrap(),
            b"hello"
        );
        assert!(decode_blob(value.as_bytes(), &sha256_hex(b"hellO")).is_err());
    }

    #[test]
    fn share_names_are_one_key_component() {
        assert!(Keys::new("default").is_ok());
        for bad in ["", "a/b", "..", ".x", "a b"] {
            assert!(Keys::new(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Keys::new("s").unwrap().key(Kind::Blobs, "ab"),
            "/_musubi/files/s/blobs/ab"
        );
    }
}
