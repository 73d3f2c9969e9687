//! `-keyring-file`: the key ring on disk as Serf keeps it, a JSON array of base64 keys with
//! the primary first. The file must exist at start (Serf does not create it: someone has
//! to choose the first key) and is rewritten in place on every change to the ring, in the
//! layout Serf's agent writes: Go's `json.MarshalIndent` with two spaces, no final newline.

use musubi_gossip::crypto::SecretKey;
use musubi_gossip::keyring::Keyring;
use musubi_gossip::keys::{GossipKeys, RingStore};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use tracing::info;

/// The keys from `-encrypt` or `-keyring-file` (not both, as Serf), or none. Errors are in
/// Serf's words, which it prints at start.
pub fn gossip_keys(
    encrypt: Option<&str>,
    keyring_file: Option<PathBuf>,
) -> Result<GossipKeys, String> {
    // Serf reads an empty value as "not set" (a config file may carry `"encrypt_key": ""`).
    let encrypt = encrypt.filter(|text| !text.is_empty());
    let keyring_file = keyring_file.filter(|path| !path.as_os_str().is_empty());
    match (encrypt, keyring_file) {
        (Some(_), Some(_)) => Err("Encryption key not allowed while using a keyring".to_string()),
        (Some(text), None) => {
            let key =
                SecretKey::from_base64(text).map_err(|e| format!("Invalid encryption key: {e}"))?;
            Ok(GossipKeys::new(Keyring::new(vec![key]), None))
        }
        (None, Some(path)) => {
            let file = KeyringFile::new(path);
            let ring = file.load()?;
            info!(
                "Restored keyring with {} keys from {}",
                ring.keys().len(),
                file.path().display()
            );
            Ok(GossipKeys::new(Some(ring), Some(Box::new(file))))
        }
        (None, None) => Ok(GossipKeys::new(None, None)),
    }
}

#[derive(Debug, Clone)]
pub struct KeyringFile {
    path: PathBuf,
}

impl KeyringFile {
    pub fn new(path: PathBuf) -> Self {
        KeyringFile { path }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The ring the file holds. Errors are in Serf's words, which it prints at start.
    pub fn load(&self) -> Result<Keyring, String> {
        let bytes = std::fs::read(&self.path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                format!("stat {}: no such file or directory", self.path.display())
            }
            _ => format!("Failed to read keyring file: {e}"),
        })?;
        let encoded: Vec<String> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("Failed to decode keyring file: {e}"))?;
        let mut keys = Vec::with_capacity(encoded.len());
        for text in &encoded {
            let raw = crate::go_base64::decode(text)
                .map_err(|e| format!("Failed to decode key from keyring: {e}"))?;
            let key =
                SecretKey::new(&raw).map_err(|e| format!("Failed to restore keyring: {e}"))?;
            keys.push(key);
        }
        Keyring::new(keys).ok_or_else(|| "Keyring file contains no keys".to_string())
    }
}

impl RingStore for KeyringFile {
    /// Rewrite the file with the ring's keys, primary first. Like Serf, the file keeps its
    /// mode; one created here (it was deleted meanwhile) is readable by the owner only.
    fn write(&self, ring: &Keyring) -> std::io::Result<()> {
        let encoded: Vec<String> = ring.keys().iter().map(SecretKey::to_base64).collect();
        let json = serde_json::to_vec_pretty(&encoded).expect("a list of strings always encodes");
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&self.path)
            .and_then(|mut file| file.write_all(&json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn config_errors_are_serfs() {
        let both = gossip_keys(Some(K1), Some("k.json".into()));
        assert_eq!(
            both.err().unwrap(),
            "Encryption key not allowed while using a keyring"
        );
        let bad = gossip_keys(Some("abc!"), None);
        assert_eq!(
            bad.err().unwrap(),
            "Invalid encryption key: illegal base64 data at input byte 3"
        );
        let unset = gossip_keys(Some(""), Some("".into())).unwrap();
        assert!(!unset.is_enabled());
        assert!(!gossip_keys(None, None).unwrap().is_enabled());
        assert!(gossip_keys(Some(K1), None).unwrap().is_enabled());
    }

    const K1: &str = "gaWY0b8tPQ3BgVQkMnoGT6lKzSCCvVcWWHhRQ/IXBAU=";
    const K2: &str = "Km3HLKBgXit44+GcYJIwS9YHUM9IULd+0MYC7ibK+0c=";

    #[test]
    fn rewritten_as_serf_rewrites_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        std::fs::write(&path, format!("[\"{K1}\"]")).unwrap();
        let file = KeyringFile::new(path.clone());
        let mut ring = file.load().unwrap();
        ring.install(SecretKey::from_base64(K2).unwrap());
        ring.use_key(SecretKey::from_base64(K2).unwrap().as_bytes())
            .unwrap();
        file.write(&ring).unwrap();
        // the bytes Debian's serf wrote after `serf keys -install K2` then `-use K2`
        let expected = format!("[\n  \"{K2}\",\n  \"{K1}\"\n]");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), expected);
        ring.remove(
            SecretKey::from_base64(K1).unwrap().as_bytes(),
            Instant::now(),
        )
        .unwrap();
        file.write(&ring).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("[\n  \"{K2}\"\n]")
        );
        assert_eq!(file.load().unwrap().primary().to_base64(), K2);
    }

    #[test]
    fn start_errors_are_serfs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyring.json");
        let file = KeyringFile::new(path.clone());
        let error = |content: &str| {
            std::fs::write(&path, content).unwrap();
            file.load().unwrap_err()
        };
        assert_eq!(error("[]"), "Keyring file contains no keys");
        assert_eq!(
            error("[\"ab\"]"),
            "Failed to decode key from keyring: illegal base64 data at input byte 0"
        );
        assert_eq!(
            error("[\"YWJj\"]"),
            "Failed to restore keyring: key size must be 16, 24 or 32 bytes"
        );
        assert!(error("nope").starts_with("Failed to decode keyring file: "));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            file.load().unwrap_err(),
            format!("stat {}: no such file or directory", path.display())
        );
    }
}
