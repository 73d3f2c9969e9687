//! The key tree below a prefix, built from the flat keys one read returned. v2 lists its
//! directories; v3 has none, so a directory there is implied by the keys below it and was
//! "created" with the first of them.

use crate::error::TreeError;
use std::collections::BTreeMap;

/// One key of a read, named by its path below the prefix (`keys/role`, no leading slash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub path: String,
    /// `None` for a (v2) directory.
    pub value: Option<String>,
    /// v2 `createdIndex`, v3 `create_revision`: the order of creation.
    pub created: u64,
    /// v2 `modifiedIndex`, v3 `mod_revision`: what a compare-and-swap names.
    pub modified: u64,
}

impl Entry {
    /// A key with a value, created and last modified at `index`.
    pub fn leaf(path: &str, value: &str, index: u64) -> Entry {
        Entry {
            path: path.to_string(),
            value: Some(value.to_string()),
            created: index,
            modified: index,
        }
    }

    /// A directory created at `index`.
    pub fn dir(path: &str, index: u64) -> Entry {
        Entry {
            path: path.to_string(),
            value: None,
            created: index,
            modified: index,
        }
    }
}

/// A node of the tree. A directory's children are in creation order (ties, as the keys one
/// v3 Txn writes, by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tree {
    Leaf {
        value: String,
        created: u64,
        modified: u64,
    },
    Dir {
        created: u64,
        children: Vec<(String, Tree)>,
    },
}

impl Tree {
    /// The empty root: a prefix with nothing below it.
    pub fn empty() -> Tree {
        Tree::Dir {
            created: 0,
            children: Vec::new(),
        }
    }

    /// The tree of `entries` (any order). Fails on a path with an empty segment and on a
    /// name that is both a value and a directory (v3 allows `a` and `a/b` side by side).
    pub fn from_entries(entries: impl IntoIterator<Item = Entry>) -> Result<Tree, TreeError> {
        let mut root = Builder::dir(None);
        for entry in entries {
            let segments: Vec<&str> = entry.path.split('/').collect();
            if segments.iter().any(|segment| segment.is_empty()) {
                return Err(TreeError::BadPath(entry.path.clone()));
            }
            root.insert(&segments, &entry)?;
        }
        Ok(root.build())
    }

    /// The child named `name` of a directory.
    pub fn child(&self, name: &str) -> Option<&Tree> {
        match self {
            Tree::Dir { children, .. } => children
                .iter()
                .find(|(child, _)| child == name)
                .map(|(_, tree)| tree),
            Tree::Leaf { .. } => None,
        }
    }

    /// The node at a `/`-separated path ("" is this node).
    pub fn at(&self, path: &str) -> Option<&Tree> {
        if path.is_empty() {
            return Some(self);
        }
        path.split('/')
            .try_fold(self, |node, segment| node.child(segment))
    }

    /// Every node below this one, depth first, with its path (directories before their
    /// children).
    pub fn walk(&self) -> Vec<(String, &Tree)> {
        let mut out = Vec::new();
        walk_into(self, "", &mut out);
        out
    }
}

fn walk_into<'a>(tree: &'a Tree, path: &str, out: &mut Vec<(String, &'a Tree)>) {
    if let Tree::Dir { children, .. } = tree {
        for (name, child) in children {
            let child_path = join(path, name);
            out.push((child_path.clone(), child));
            walk_into(child, &child_path, out);
        }
    }
}

/// `parent/name`, or `name` at the root.
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Whether a name is a decimal number (`0`, `17`, a v2 in-order key's 20 digits): such
/// names are positions, so their directory is an array.
pub fn is_decimal(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit())
}

enum Builder {
    Leaf {
        value: String,
        created: u64,
        modified: u64,
    },
    Dir {
        /// Set when the read listed the directory itself (v2).
        created: Option<u64>,
        children: BTreeMap<String, Builder>,
    },
}

impl Builder {
    fn dir(created: Option<u64>) -> Builder {
        Builder::Dir {
            created,
            children: BTreeMap::new(),
        }
    }

    fn insert(&mut self, segments: &[&str], entry: &Entry) -> Result<(), TreeError> {
        let Builder::Dir { children, .. } = self else {
            return Err(TreeError::ValueAndDirectory(entry.path.clone()));
        };
        let (name, rest) = segments.split_first().expect("paths have a segment");
        if rest.is_empty() {
            match (&entry.value, children.get_mut(*name)) {
                (Some(value), None) => {
                    children.insert(
                        name.to_string(),
                        Builder::Leaf {
                            value: value.clone(),
                            created: entry.created,
                            modified: entry.modified,
                        },
                    );
                }
                (None, None) => {
                    children.insert(name.to_string(), Builder::dir(Some(entry.created)));
                }
                (None, Some(Builder::Dir { created, .. })) => *created = Some(entry.created),
                _ => return Err(TreeError::ValueAndDirectory(entry.path.clone())),
            }
            return Ok(());
        }
        children
            .entry(name.to_string())
            .or_insert_with(|| Builder::dir(None))
            .insert(rest, entry)
    }

    /// The creation index this node sorts by: its own, or (an implied directory) that of
    /// the first key created below it.
    fn created(&self) -> u64 {
        match self {
            Builder::Leaf { created, .. }
            | Builder::Dir {
                created: Some(created),
                ..
            } => *created,
            Builder::Dir {
                created: None,
                children,
            } => children.values().map(Builder::created).min().unwrap_or(0),
        }
    }

    fn build(self) -> Tree {
        let created = self.created();
        match self {
            Builder::Leaf {
                value,
                created,
                modified,
            } => Tree::Leaf {
                value,
                created,
                modified,
            },
            Builder::Dir { children, .. } => {
                let mut children: Vec<(u64, String, Tree)> = children
                    .into_iter()
                    .map(|(name, child)| (child.created(), name, child.build()))
                    .collect();
                children.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
                Tree::Dir {
                    created,
                    children: children
                        .into_iter()
                        .map(|(_, name, tree)| (name, tree))
                        .collect(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tree: &Tree) -> Vec<&str> {
        match tree {
            Tree::Dir { children, .. } => children.iter().map(|(n, _)| n.as_str()).collect(),
            Tree::Leaf { .. } => vec![],
        }
    }

    #[test]
    fn children_are_in_creation_order_whatever_the_read_order() {
        let tree = Tree::from_entries(vec![
            Entry::leaf("b", "1", 9),
            Entry::leaf("a", "2", 12),
            Entry::leaf("c", "3", 4),
        ])
        .unwrap();
        assert_eq!(names(&tree), ["c", "b", "a"]);
    }

    #[test]
    fn an_implied_directory_is_created_with_its_first_key() {
        let tree = Tree::from_entries(vec![
            Entry::leaf("x", "1", 5),
            Entry::leaf("d/late", "2", 9),
            Entry::leaf("d/early", "3", 3),
        ])
        .unwrap();
        assert_eq!(names(&tree), ["d", "x"]);
        assert_eq!(names(tree.at("d").unwrap()), ["early", "late"]);
    }

    #[test]
    fn a_listed_directory_keeps_its_own_index_and_an_empty_one_stays() {
        let tree = Tree::from_entries(vec![
            Entry::leaf("d/k", "v", 2),
            Entry::dir("d", 8),
            Entry::dir("e", 5),
        ])
        .unwrap();
        assert_eq!(names(&tree), ["e", "d"]);
        assert_eq!(names(tree.at("e").unwrap()), Vec::<&str>::new());
    }

    #[test]
    fn a_value_with_keys_below_it_is_refused() {
        assert_eq!(
            Tree::from_entries(vec![Entry::leaf("a", "1", 2), Entry::leaf("a/b", "2", 3)]),
            Err(TreeError::ValueAndDirectory("a/b".into()))
        );
        assert_eq!(
            Tree::from_entries(vec![Entry::leaf("a/b", "2", 3), Entry::leaf("a", "1", 2)]),
            Err(TreeError::ValueAndDirectory("a".into()))
        );
        assert_eq!(
            Tree::from_entries(vec![Entry::leaf("a//b", "1", 2)]),
            Err(TreeError::BadPath("a//b".into()))
        );
    }
}
