//! A prefix's tree as the agent reads it: rendered by `musubi conf`'s rules (musubi-conf)
//! with Serf's schema, the agent's own table of config keys, so `retry_max_attempts` is a
//! number, `event_handlers` a list and `tags` a map; then decoded by the config-file
//! decoder, so a tree is refused exactly where the same JSON in a file would be.

use super::Rendered;
use crate::config::layer::{CONFIG_KEYS, ConfigLayer, KeyType};
use musubi_client::Node;
use musubi_conf::{Entry, Options, Shape, Tree};
use serde_json::Value;

/// The document `prefix`'s tree renders to.
pub(super) fn document(prefix: &str, root: &Node) -> Result<Value, String> {
    let mut entries = Vec::new();
    collect(prefix, root, &mut entries);
    let tree = Tree::from_entries(entries).map_err(|e| format!("'{prefix}': {e}"))?;
    musubi_conf::render(&tree, &serf_schema()).map_err(|e| format!("'{prefix}': {e}"))
}

/// A rendered document as a config layer, refused in the config file decoder's words.
pub(super) fn decode(rendered: &Rendered) -> Result<ConfigLayer, String> {
    let bytes = serde_json::to_vec(&rendered.document).expect("a Value always serialises");
    crate::config::file::decode(&bytes)
        .map_err(|e| format!("Error decoding '{}': {e}", rendered.prefix))
}

/// `/serf/web/tags/role` below `/serf/web` is `tags/role`.
pub(super) fn name_below(parent: &str, key: &str) -> String {
    key.strip_prefix(parent)
        .unwrap_or(key)
        .trim_start_matches('/')
        .to_string()
}

fn collect(prefix: &str, node: &Node, entries: &mut Vec<Entry>) {
    for child in node.children() {
        entries.push(Entry {
            path: name_below(prefix, &child.key),
            value: (!child.dir).then(|| child.value.clone()),
            created: child.created_index,
            modified: child.modified_index,
        });
        collect(prefix, child, entries);
    }
}

fn serf_schema() -> Options {
    Options::default().schema(serf_shapes())
}

/// Serf's config keys as musubi-conf shapes, from the table the config-file decoder checks
/// (durations are Go duration strings), so a rendered tree and a file never disagree.
pub fn serf_shapes() -> impl Iterator<Item = (&'static str, Shape)> {
    CONFIG_KEYS.iter().map(|(key, kind)| {
        let shape = match kind {
            KeyType::Text | KeyType::Duration => Shape::Text,
            KeyType::Bool => Shape::Bool,
            KeyType::Int => Shape::Int,
            KeyType::TextList => Shape::List,
            KeyType::TextMap => Shape::Map,
        };
        (*key, shape)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(key: &str, value: Option<&str>, index: u64, children: Vec<Node>) -> Node {
        Node {
            key: key.to_string(),
            dir: value.is_none(),
            value: value.unwrap_or_default().to_string(),
            nodes: value.is_none().then_some(children),
            created_index: index,
            modified_index: index,
            ..Node::default()
        }
    }

    #[test]
    fn a_role_tree_renders_as_serfs_config_with_its_types() {
        let root = node(
            "/serf/web",
            None,
            2,
            vec![
                node("/serf/web/log_level", Some("debug"), 3, vec![]),
                node("/serf/web/retry_max_attempts", Some("3"), 4, vec![]),
                node(
                    "/serf/web/tags",
                    None,
                    5,
                    vec![node("/serf/web/tags/role", Some("db"), 6, vec![])],
                ),
                node(
                    "/serf/web/event_handlers",
                    None,
                    7,
                    vec![
                        node(
                            "/serf/web/event_handlers/00000000000000000009",
                            Some("b"),
                            9,
                            vec![],
                        ),
                        node(
                            "/serf/web/event_handlers/00000000000000000008",
                            Some("a"),
                            8,
                            vec![],
                        ),
                    ],
                ),
            ],
        );
        let document = document("/serf/web", &root).unwrap();
        assert_eq!(
            document,
            serde_json::json!({"log_level": "debug", "retry_max_attempts": 3,
                               "tags": {"role": "db"}, "event_handlers": ["a", "b"]})
        );
        let layer = decode(&Rendered {
            prefix: "/serf/web".into(),
            index: 9,
            document,
        })
        .unwrap();
        assert_eq!(layer.retry_max_attempts, Some(3));
        assert_eq!(layer.event_handlers, vec!["a", "b"]);
    }

    #[test]
    fn a_bad_number_or_an_unknown_key_is_refused() {
        let bad_number = node(
            "/r",
            None,
            1,
            vec![node("/r/retry_max_attempts", Some("many"), 2, vec![])],
        );
        assert!(document("/r", &bad_number).is_err());
        let unknown = Rendered {
            prefix: "/r".into(),
            index: 2,
            document: serde_json::json!({"colour": "blue"}),
        };
        let refused = decode(&unknown).unwrap_err();
        assert!(refused.contains("invalid keys: colour"), "{refused}");
    }
}
