//! etcd's `--config-file`: a YAML mapping whose keys are the flags' names
//! (`listen-client-urls: http://0.0.0.0:2379`), with TLS under `client-transport-security`
//! and `peer-transport-security` (etcd's `etcd.conf.yml.sample`). This module only turns the
//! document into (flag, value) pairs, as if they had been typed; `config` decides what each
//! one means, so a key in the file is honoured or refused exactly as the flag would be.

use yaml_rust2::{Yaml, YamlLoader};

/// Why a config file could not be read. The messages name the file and the key.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FileError {
    #[error("cannot read config file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("config file {path} is not YAML: {reason}")]
    NotYaml { path: String, reason: String },
    #[error("config file {path}: {key}: {reason}")]
    BadKey {
        path: String,
        key: String,
        reason: String,
    },
}

/// The sections whose keys are the flags of one side's TLS, and that side's name.
const TLS_SECTIONS: [(&str, Side); 2] = [
    ("client-transport-security", Side::Client),
    ("peer-transport-security", Side::Peer),
];

#[derive(Clone, Copy)]
enum Side {
    Client,
    Peer,
}

impl Side {
    /// The flag a key of this side's section stands for: `cert-file` under
    /// `peer-transport-security` is `--peer-cert-file`, `crl-file` under
    /// `client-transport-security` is `--client-crl-file`.
    fn flag(self, key: &str) -> String {
        let (prefix, side) = match self {
            Side::Client => ("", "client-"),
            Side::Peer => ("peer-", "peer-"),
        };
        match key {
            "crl-file" => format!("{side}crl-file"),
            "allowed-cn" | "allowed-hostname" => format!("{side}cert-{key}"),
            _ => format!("{prefix}{key}"),
        }
    }
}

/// The flag values a config file gives, in the file's order. A key whose value is empty
/// (`discovery:`) gives nothing, as etcd leaves such a field at its default.
pub fn load(path: &str) -> Result<Vec<(String, String)>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|e| FileError::Unreadable {
        path: path.into(),
        reason: e.to_string(),
    })?;
    parse(path, &text)
}

fn parse(path: &str, text: &str) -> Result<Vec<(String, String)>, FileError> {
    let documents = YamlLoader::load_from_str(text).map_err(|e| FileError::NotYaml {
        path: path.into(),
        reason: e.to_string(),
    })?;
    let bad_key = |key: &str, reason: &str| FileError::BadKey {
        path: path.into(),
        key: key.into(),
        reason: reason.into(),
    };
    let mut values = Vec::new();
    let Some(document) = documents.into_iter().next() else {
        return Ok(values);
    };
    let Yaml::Hash(top) = document else {
        return Err(FileError::NotYaml {
            path: path.into(),
            reason: "the document is not a mapping of flag names to values".into(),
        });
    };
    for (key, value) in top {
        let key = key_name(&key).ok_or_else(|| bad_key("?", "keys must be flag names"))?;
        if let Some((_, side)) = TLS_SECTIONS.iter().find(|(section, _)| *section == key) {
            let Yaml::Hash(section) = value else {
                if value.is_null() {
                    continue;
                }
                return Err(bad_key(&key, "must be a mapping of TLS settings"));
            };
            for (inner, value) in section {
                let inner =
                    key_name(&inner).ok_or_else(|| bad_key(&key, "keys must be flag names"))?;
                let flag = side.flag(&inner);
                if let Some(value) = scalar_or_list(&value).map_err(|r| bad_key(&flag, r))? {
                    values.push((flag, value));
                }
            }
        } else if let Some(value) = scalar_or_list(&value).map_err(|r| bad_key(&key, r))? {
            values.push((key, value));
        }
    }
    Ok(values)
}

fn key_name(key: &Yaml) -> Option<String> {
    key.as_str().map(str::to_string)
}

/// A value as its flag would be typed: lists (etcd's `log-outputs: [stderr]`) joined by
/// commas, as the flag takes them.
fn scalar_or_list(value: &Yaml) -> Result<Option<String>, &'static str> {
    match value {
        Yaml::Null => Ok(None),
        Yaml::Array(items) => {
            let items: Vec<String> = items
                .iter()
                .map(|item| scalar(item).ok_or("a list may hold only plain values"))
                .collect::<Result<_, _>>()?;
            Ok(Some(items.join(",")))
        }
        other => scalar(other)
            .map(Some)
            .ok_or("must be a plain value or a list of them"),
    }
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<(String, String)> {
        parse("etcd.yml", text).unwrap()
    }

    fn pair(flag: &str, value: &str) -> (String, String) {
        (flag.to_string(), value.to_string())
    }

    #[test]
    fn etcd_sample_keys_become_flag_values() {
        let got = values(
            "name: 'n1'\ndata-dir: /var/lib/etcd\nsnapshot-count: 10000\nheartbeat-interval: 100\n\
             listen-client-urls: http://localhost:2379\ndiscovery:\nforce-new-cluster: false\n\
             log-outputs: [stderr, /var/log/etcd.log]\n",
        );
        assert_eq!(
            got,
            vec![
                pair("name", "n1"),
                pair("data-dir", "/var/lib/etcd"),
                pair("snapshot-count", "10000"),
                pair("heartbeat-interval", "100"),
                pair("listen-client-urls", "http://localhost:2379"),
                pair("force-new-cluster", "false"),
                pair("log-outputs", "stderr,/var/log/etcd.log"),
            ]
        );
    }

    #[test]
    fn transport_security_sections_are_the_tls_flags_of_each_side() {
        let got = values(
            "client-transport-security:\n  cert-file: c.pem\n  client-cert-auth: true\n  \
             crl-file: r.pem\npeer-transport-security:\n  auto-tls: true\n  trusted-ca-file:\n  \
             allowed-cn: n1\n",
        );
        assert_eq!(
            got,
            vec![
                pair("cert-file", "c.pem"),
                pair("client-cert-auth", "true"),
                pair("client-crl-file", "r.pem"),
                pair("peer-auto-tls", "true"),
                pair("peer-cert-allowed-cn", "n1"),
            ]
        );
    }

    #[test]
    fn an_empty_file_gives_nothing() {
        assert!(values("").is_empty());
        assert!(values("# only a comment\n").is_empty());
    }

    #[test]
    fn what_is_not_a_mapping_of_plain_values_is_refused_by_name() {
        assert!(matches!(
            parse("f", "- a\n- b\n"),
            Err(FileError::NotYaml { .. })
        ));
        assert!(matches!(
            parse("f", "name: {a: 1}\n"),
            Err(FileError::BadKey { key, .. }) if key == "name"
        ));
        assert!(matches!(
            parse("f", "name: [\n"),
            Err(FileError::NotYaml { .. })
        ));
        assert!(matches!(
            parse("f", "peer-transport-security: yes-please\n"),
            Err(FileError::BadKey { key, .. }) if key == "peer-transport-security"
        ));
    }
}
