//! Serf's JSON config files: `-config-file PATH` and `-config-dir DIR` (its `*.json`
//! files, one level deep, in name order), read in the order given and merged one over the
//! other. Errors are worded as Serf words them (`Error decoding 'f.json': ...`).

use crate::config_layer::{CONFIG_KEYS, ConfigLayer};
use std::path::{Path, PathBuf};

/// Read every path in order (each a file or a directory) and merge them, later over
/// earlier.
pub fn read_paths(paths: &[PathBuf]) -> Result<ConfigLayer, String> {
    let mut merged = ConfigLayer::default();
    for path in paths {
        let shown = path.display();
        let metadata =
            std::fs::metadata(path).map_err(|e| format!("Error reading '{shown}': {e}"))?;
        if !metadata.is_dir() {
            merged = merged.merge(read_file(path)?);
            continue;
        }
        for file in json_files_in(path).map_err(|e| format!("Error reading '{shown}': {e}"))? {
            merged = merged.merge(read_file(&file)?);
        }
    }
    Ok(merged)
}

/// A directory's `*.json` regular files, sorted by name; subdirectories are not entered.
fn json_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let is_json = entry.file_name().to_string_lossy().ends_with(".json");
        if is_json && !entry.file_type()?.is_dir() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<ConfigLayer, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("Error reading '{shown}': {e}"))?;
    decode(&text).map_err(|e| format!("Error decoding '{shown}': {e}"))
}

/// One file's settings. An unknown key is refused, all of them named at once and sorted, as
/// Serf's decoder (mapstructure) reports them.
pub fn decode(text: &[u8]) -> Result<ConfigLayer, String> {
    let value: serde_json::Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let Some(object) = value.as_object() else {
        return Err(format!("'' expected a map, got '{}'", go_kind(&value)));
    };
    let mut unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|key| !CONFIG_KEYS.contains(key))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(format!(
            "1 error(s) decoding:\n\n* '' has invalid keys: {}",
            unknown.join(", ")
        ));
    }
    // Each key alone first, so that an error names the key it is about.
    for (key, item) in object {
        let single = serde_json::json!({ key: item });
        if let Err(e) = serde_json::from_value::<ConfigLayer>(single) {
            return Err(format!("1 error(s) decoding:\n\n* '{key}': {e}"));
        }
    }
    serde_json::from_value(value).map_err(|e| e.to_string())
}

/// The Go type name mapstructure would name for a JSON value.
fn go_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Array(_) => "slice",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Number(_) => "float64",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Null => "invalid",
        serde_json::Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn unknown_keys_are_refused_in_serfs_words() {
        assert_eq!(
            decode(br#"{"zeta":1,"alpha":2,"node_name":"x"}"#).unwrap_err(),
            "1 error(s) decoding:\n\n* '' has invalid keys: alpha, zeta"
        );
        assert_eq!(
            decode(b"[1]").unwrap_err(),
            "'' expected a map, got 'slice'"
        );
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let error = decode(br#"{"retry_interval":"5x"}"#).unwrap_err();
        assert!(error.contains("'retry_interval'"), "{error}");
        assert!(error.contains(r#"unknown unit "x""#), "{error}");
        let error = decode(br#"{"node_name":5}"#).unwrap_err();
        assert!(error.contains("'node_name'"), "{error}");
    }

    #[test]
    fn files_then_directories_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("first.json");
        std::fs::write(&file, r#"{"node_name":"file","retry_join":["a"]}"#).unwrap();
        let confd = dir.path().join("conf.d");
        std::fs::create_dir(&confd).unwrap();
        std::fs::write(
            confd.join("b.json"),
            r#"{"node_name":"b","retry_join":["c"]}"#,
        )
        .unwrap();
        std::fs::write(
            confd.join("a.json"),
            r#"{"retry_interval":"3s","retry_join":["b"]}"#,
        )
        .unwrap();
        std::fs::write(confd.join("z.txt"), "not json and not read").unwrap();
        std::fs::create_dir(confd.join("nested.json")).unwrap();
        let merged = read_paths(&[file, confd]).unwrap();
        assert_eq!(merged.node_name.as_deref(), Some("b"));
        assert_eq!(merged.retry_join, vec!["a", "b", "c"]);
        assert_eq!(merged.retry_interval, Some(Duration::from_secs(3)));
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let error = read_paths(&[PathBuf::from("/nonexistent/x.json")]).unwrap_err();
        assert!(
            error.starts_with("Error reading '/nonexistent/x.json': "),
            "{error}"
        );
    }
}
