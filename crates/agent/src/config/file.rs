//! Serf's JSON config files: `-config-file PATH` and `-config-dir DIR` (its `*.json`
//! files, one level deep, in name order), read in the order given and merged one over the
//! other. Errors are worded as Serf words them (`Error decoding 'f.json': ...`).

use super::layer::{CONFIG_KEYS, ConfigLayer, KeyType};
use crate::go_duration;
use serde_json::{Map, Value};
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

/// One file's settings, checked as Serf's decoder (mapstructure) checks them and refused
/// in its words: every unknown key at once, sorted; every value of the wrong type, one
/// line each, sorted; then Go's error for a bad duration.
pub fn decode(text: &[u8]) -> Result<ConfigLayer, String> {
    let value: Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let Value::Object(object) = value else {
        return Err(format!("'' expected a map, got '{}'", go_kind(&value)));
    };
    let mut unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|key| !CONFIG_KEYS.iter().any(|(known, _)| known == key))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(format!(
            "1 error(s) decoding:\n\n* '' has invalid keys: {}",
            unknown.join(", ")
        ));
    }
    let mut errors = Vec::new();
    let mut accepted = Map::new();
    for (key, kind) in CONFIG_KEYS {
        match object.get(*key) {
            // Go leaves a null as the zero value: not said.
            None | Some(Value::Null) => {}
            Some(item) => match check(key, *kind, item) {
                Ok(item) => {
                    accepted.insert(key.to_string(), item);
                }
                Err(e) => errors.extend(e),
            },
        }
    }
    if !errors.is_empty() {
        errors.sort();
        let lines: String = errors.iter().map(|e| format!("\n* {e}")).collect();
        return Err(format!("{} error(s) decoding:\n{lines}", errors.len()));
    }
    for (key, kind) in CONFIG_KEYS {
        if let (KeyType::Duration, Some(Value::String(text))) = (kind, accepted.get(*key))
            && !text.is_empty()
        {
            go_duration::parse(text)?;
        }
    }
    serde_json::from_value(Value::Object(accepted)).map_err(|e| e.to_string())
}

/// The value as the layer takes it, or mapstructure's complaints about it.
fn check(key: &str, kind: KeyType, item: &Value) -> Result<Value, Vec<String>> {
    let one = |e: String| vec![e];
    match (kind, item) {
        (KeyType::Text | KeyType::Duration, Value::String(_)) | (KeyType::Bool, Value::Bool(_)) => {
            Ok(item.clone())
        }
        // Go converts any JSON number into an int field, dropping a fraction.
        (KeyType::Int, Value::Number(n)) => Ok(Value::from(n.as_f64().unwrap_or(0.0) as i64)),
        (KeyType::Text | KeyType::Duration, _) => Err(one(unconvertible(key, "string", item))),
        (KeyType::Bool, _) => Err(one(unconvertible(key, "bool", item))),
        (KeyType::Int, _) => Err(one(unconvertible(key, "int", item))),
        (KeyType::TextList, Value::Array(items)) => {
            let errors: Vec<String> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| !item.is_string())
                .map(|(i, item)| unconvertible(&format!("{key}[{i}]"), "string", item))
                .collect();
            if errors.is_empty() {
                Ok(item.clone())
            } else {
                Err(errors)
            }
        }
        (KeyType::TextList, _) => Err(one(format!(
            "'{key}': source data must be an array or slice, got {}",
            go_kind(item)
        ))),
        (KeyType::TextMap, Value::Object(entries)) => {
            let errors: Vec<String> = entries
                .iter()
                .filter(|(_, item)| !item.is_string())
                .map(|(name, item)| unconvertible(&format!("{key}[{name}]"), "string", item))
                .collect();
            if errors.is_empty() {
                Ok(item.clone())
            } else {
                Err(errors)
            }
        }
        (KeyType::TextMap, _) => Err(one(format!(
            "'{key}' expected a map, got '{}'",
            go_kind(item)
        ))),
    }
}

fn unconvertible(key: &str, expected: &str, item: &Value) -> String {
    let shown = match item {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    format!(
        "'{key}' expected type '{expected}', got unconvertible type '{}', value: '{shown}'",
        go_type(item)
    )
}

/// The Go kind mapstructure names for a JSON value it cannot use as a map or slice.
fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
        other => go_type(other),
    }
}

/// The Go type encoding/json decodes a JSON value into.
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Array(_) => "[]interface {}",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "invalid",
        Value::Object(_) => "map[string]interface {}",
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
    fn values_of_the_wrong_type_are_refused_in_serfs_words() {
        assert_eq!(
            decode(br#"{"protocol":"x","node_name":5}"#).unwrap_err(),
            "2 error(s) decoding:\n\n\
             * 'node_name' expected type 'string', got unconvertible type 'float64', value: '5'\n\
             * 'protocol' expected type 'int', got unconvertible type 'string', value: 'x'"
        );
        for (json, line) in [
            (
                r#"{"leave_on_terminate":"yes"}"#,
                "'leave_on_terminate' expected type 'bool', got unconvertible type 'string', value: 'yes'",
            ),
            (
                r#"{"start_join":"a"}"#,
                "'start_join': source data must be an array or slice, got string",
            ),
            (
                r#"{"start_join":[1]}"#,
                "'start_join[0]' expected type 'string', got unconvertible type 'float64', value: '1'",
            ),
            (r#"{"tags":"a"}"#, "'tags' expected a map, got 'string'"),
            (
                r#"{"tags":{"a":1}}"#,
                "'tags[a]' expected type 'string', got unconvertible type 'float64', value: '1'",
            ),
            (
                r#"{"rpc_auth":true}"#,
                "'rpc_auth' expected type 'string', got unconvertible type 'bool', value: 'true'",
            ),
        ] {
            assert_eq!(
                decode(json.as_bytes()).unwrap_err(),
                format!("1 error(s) decoding:\n\n* {line}")
            );
        }
    }

    #[test]
    fn go_accepts_what_serf_accepts() {
        let layer = decode(br#"{"retry_max_attempts":1.5,"node_name":null}"#).unwrap();
        assert_eq!(layer.retry_max_attempts, Some(1));
        assert_eq!(layer.node_name, None);
    }

    #[test]
    fn a_bad_duration_is_gos_error_alone() {
        assert_eq!(
            decode(br#"{"retry_interval":"5x"}"#).unwrap_err(),
            r#"time: unknown unit "x" in duration "5x""#
        );
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
