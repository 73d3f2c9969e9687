//! `-tags-file`: the node's tags as a JSON object on disk, so they survive a restart.
//! Read once at start; rewritten whenever `serf tags` changes them, in the layout Serf's
//! agent writes (Go's `json.MarshalIndent` with two spaces: sorted keys, no final newline),
//! created readable only by the owner because tags may be sensitive.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub type Tags = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct TagsFile {
    path: PathBuf,
}

impl TagsFile {
    pub fn new(path: PathBuf) -> Self {
        TagsFile { path }
    }

    /// The tags stored in the file; none if it does not exist yet (Serf creates it on the
    /// first change).
    pub fn load(&self) -> Result<Tags, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("Failed to decode tags file: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tags::new()),
            Err(e) => Err(format!("Failed to read tags file: {e}")),
        }
    }

    pub fn write(&self, tags: &Tags) -> Result<(), String> {
        let encoded = serde_json::to_vec_pretty(tags).expect("a string map always encodes");
        write_private(&self.path, &encoded).map_err(|e| format!("Failed to write tags file: {e}"))
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

/// `serf tags -set K=V -delete K`: deletions first, then the new values, as Serf applies them.
pub fn updated(current: &Tags, set: &Tags, delete: &[String]) -> Tags {
    let mut tags: Tags = current
        .iter()
        .filter(|(key, _)| !delete.contains(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    tags.extend(set.iter().map(|(key, value)| (key.clone(), value.clone())));
    tags
}

/// memberlist's `MetaMaxSize`: a member's tags travel in every packet header that names
/// it, so Serf bounds them, encoded.
const ENCODED_TAGS_MAX: usize = 512;

/// Serf's refusal of tags whose encoding (a magic byte, then Go's msgpack map: fixstr below
/// 32 bytes, raw16 above, as its codec writes them) would pass [`ENCODED_TAGS_MAX`]; the
/// boundary checked against Debian's serf (a 505-byte value under a 1-byte key fits, 506
/// does not).
pub fn check_encoded_size(tags: &Tags) -> Result<(), String> {
    fn header(len: usize, small: usize) -> usize {
        match len {
            _ if len < small => 1,
            0..=0xffff => 3,
            _ => 5,
        }
    }
    let encoded = 1
        + header(tags.len(), 16)
        + tags
            .iter()
            .map(|(k, v)| header(k.len(), 32) + k.len() + header(v.len(), 32) + v.len())
            .sum::<usize>();
    if encoded > ENCODED_TAGS_MAX {
        return Err(format!(
            "Encoded length of tags exceeds limit of {ENCODED_TAGS_MAX} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_refused_past_512_encoded_bytes_where_serf_refuses_them() {
        let value = |n| "x".repeat(n);
        assert!(check_encoded_size(&tags(&[("a", &value(505))])).is_ok());
        assert_eq!(
            check_encoded_size(&tags(&[("a", &value(506))])).unwrap_err(),
            "Encoded length of tags exceeds limit of 512 bytes"
        );
        assert!(check_encoded_size(&tags(&[("a", &value(490)), ("b", &value(10))])).is_ok());
        assert!(check_encoded_size(&Tags::new()).is_ok());
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs.iter().map(|&(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn written_as_serf_writes_it_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = TagsFile::new(dir.path().join("tags.json"));
        assert_eq!(file.load().unwrap(), Tags::new());
        let written = tags(&[("role", "web"), ("dc-zone", "x")]);
        file.write(&written).unwrap();
        // bytes captured from serf 0.9.4 after `serf tags -set role=web -set dc-zone=x`
        let bytes = std::fs::read(dir.path().join("tags.json")).unwrap();
        assert_eq!(bytes, b"{\n  \"dc-zone\": \"x\",\n  \"role\": \"web\"\n}");
        assert_eq!(file.load().unwrap(), written);
        std::fs::write(dir.path().join("tags.json"), b"[1]").unwrap();
        assert!(
            file.load()
                .unwrap_err()
                .starts_with("Failed to decode tags file")
        );
    }

    #[test]
    fn deletions_apply_before_the_new_values() {
        let current = tags(&[("a", "1"), ("b", "2")]);
        let set = tags(&[("b", "3"), ("c", "4")]);
        let delete = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            updated(&current, &set, &delete),
            tags(&[("b", "3"), ("c", "4")])
        );
    }
}
