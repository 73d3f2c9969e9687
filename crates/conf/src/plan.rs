//! What an import writes: the tree read now against the keys a document needs. Each write
//! names what it expects to find (the `modifiedIndex`/`mod_revision` read, or nothing), so
//! the store refuses it if someone changed the key since the read.

use crate::import::{Desired, DesiredNode};
use crate::options::Options;
use crate::tree::Tree;
use std::collections::HashSet;

/// What a write expects to find at its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// No key (v2 `prevExist=false`, v3 `create_revision = 0`).
    Absent,
    /// The key as read (v2 `prevIndex`, v3 `mod_revision`).
    Modified(u64),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Put {
    pub path: String,
    /// `None`: an empty directory (v2 only; v3 has no directories).
    pub value: Option<String>,
    pub expect: Expect,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delete {
    pub path: String,
    /// A directory, deleted with everything below it.
    pub dir: bool,
    /// The leaf's index as read (a directory's is its creation).
    pub modified: u64,
}

/// Deletes first (keys in the way of the document, strays in its arrays, and with
/// `prune` everything it does not name), then puts in the document's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub deletes: Vec<Delete>,
    pub puts: Vec<Put>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.deletes.is_empty() && self.puts.is_empty()
    }
}

/// The writes that turn `current` (the prefix as read) into `desired`. Hidden names are
/// never touched unless `options.hidden`.
pub fn plan(current: &Tree, desired: &Desired, options: &Options, prune: bool) -> Plan {
    let mut result = Plan::default();
    let mut deleted: HashSet<String> = HashSet::new();
    let is_deleted = |deleted: &HashSet<String>, path: &str| {
        let mut prefix = String::new();
        for segment in path.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(segment);
            if deleted.contains(&prefix) {
                return true;
            }
        }
        false
    };
    for (path, node) in current.walk() {
        if is_deleted(&deleted, &path) || path.split('/').any(|name| options.skips(name)) {
            continue;
        }
        let (parent, _) = path.rsplit_once('/').unwrap_or(("", &path));
        let in_array = if parent.is_empty() {
            desired.root_is_array
        } else {
            matches!(desired.get(parent), Some(DesiredNode::Dir { array: true }))
        };
        let doomed = match (desired.get(&path), node) {
            (Some(DesiredNode::Leaf(_)), Tree::Dir { .. })
            | (Some(DesiredNode::Dir { .. }), Tree::Leaf { .. }) => true,
            (Some(_), _) => false,
            (None, _) => prune || in_array,
        };
        if doomed {
            let (dir, modified) = match node {
                Tree::Dir { created, .. } => (true, *created),
                Tree::Leaf { modified, .. } => (false, *modified),
            };
            result.deletes.push(Delete {
                path: path.clone(),
                dir,
                modified,
            });
            deleted.insert(path);
        }
    }
    for (path, node) in &desired.nodes {
        let found = current.at(path).filter(|_| !is_deleted(&deleted, path));
        match (node, found) {
            (DesiredNode::Leaf(value), Some(Tree::Leaf { value: now, .. })) if value == now => {}
            (DesiredNode::Leaf(value), found) => result.puts.push(Put {
                path: path.clone(),
                value: Some(value.clone()),
                expect: match found {
                    Some(Tree::Leaf { modified, .. }) => Expect::Modified(*modified),
                    _ => Expect::Absent,
                },
            }),
            (DesiredNode::Dir { .. }, Some(Tree::Dir { .. })) => {}
            (DesiredNode::Dir { .. }, _) => {
                // Keys below a directory create it; only an empty one is made on its own.
                let below = format!("{path}/");
                if !desired.nodes.iter().any(|(p, _)| p.starts_with(&below)) {
                    result.puts.push(Put {
                        path: path.clone(),
                        value: None,
                        expect: Expect::Absent,
                    });
                }
            }
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::import;
    use crate::tree::Entry;
    use serde_json::json;

    fn seed() -> Tree {
        Tree::from_entries(vec![
            Entry::leaf("bind", "192.168.39.3", 4),
            Entry::leaf("event_handlers/00000000000000000013", "test2", 13),
            Entry::leaf("event_handlers/00000000000000000014", "aaa", 14),
            Entry::leaf("keys/role", "develop", 8),
            Entry::leaf("_private", "x", 9),
        ])
        .unwrap()
    }

    #[test]
    fn unchanged_keys_are_left_alone_and_changed_ones_compare_their_index() {
        let options = Options::default();
        let desired = import(
            &json!({"bind": "10.0.0.1", "keys": {"role": "develop", "new": "n"}}),
            &options,
        )
        .unwrap();
        let plan = plan(&seed(), &desired, &options, false);
        assert!(plan.deletes.is_empty());
        assert_eq!(
            plan.puts,
            vec![
                Put {
                    path: "bind".into(),
                    value: Some("10.0.0.1".into()),
                    expect: Expect::Modified(4)
                },
                Put {
                    path: "keys/new".into(),
                    value: Some("n".into()),
                    expect: Expect::Absent
                },
            ]
        );
    }

    #[test]
    fn an_array_replaces_its_directory_and_prune_removes_the_rest_but_hidden_keys() {
        let options = Options::default();
        let desired = import(&json!({"event_handlers": ["x"]}), &options).unwrap();
        let deleted = |prune| -> Vec<String> {
            plan(&seed(), &desired, &options, prune)
                .deletes
                .into_iter()
                .map(|d| d.path)
                .collect()
        };
        assert_eq!(
            deleted(false),
            [
                "event_handlers/00000000000000000013",
                "event_handlers/00000000000000000014"
            ]
        );
        assert_eq!(
            deleted(true),
            [
                "bind",
                "keys",
                "event_handlers/00000000000000000013",
                "event_handlers/00000000000000000014"
            ]
        );
    }

    #[test]
    fn a_value_in_the_way_of_a_directory_is_deleted_first() {
        let options = Options::default();
        let desired = import(&json!({"bind": {"addr": "a"}}), &options).unwrap();
        let plan = plan(&seed(), &desired, &options, false);
        assert_eq!(
            plan.deletes,
            vec![Delete {
                path: "bind".into(),
                dir: false,
                modified: 4
            }]
        );
        assert_eq!(plan.puts[0].expect, Expect::Absent);
    }
}
