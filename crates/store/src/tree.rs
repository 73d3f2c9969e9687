//! The keyspace: one ordered map from full path to entry, directories included.
//!
//! Directories are explicit entries (`value == None`), as in the v2→v3 mapping: v2 path
//! `/a/b` is key `/a/b`. Byte order of keys is Go's string order, so every listing comes
//! out sorted, which also satisfies `sorted=true`.

use crate::{ErrorCode, NodeView, V2Error, remaining_seconds};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// `None` marks a directory.
    pub value: Option<String>,
    pub created_index: u64,
    pub modified_index: u64,
    pub expire_at: Option<u64>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.value.is_none()
    }
}

/// The root directory: it always exists, is never written, and has index 0.
static ROOT: Entry = Entry {
    value: None,
    created_index: 0,
    modified_index: 0,
    expire_at: None,
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tree {
    entries: BTreeMap<String, Entry>,
    /// (expiry in Unix ms, key) for every entry with a TTL: the expiry queue.
    expiring: BTreeSet<(u64, String)>,
}

impl Tree {
    pub fn from_entries(entries: BTreeMap<String, Entry>) -> Tree {
        let expiring = entries
            .iter()
            .filter_map(|(k, e)| e.expire_at.map(|at| (at, k.clone())))
            .collect();
        Tree { entries, expiring }
    }

    pub fn entries(&self) -> &BTreeMap<String, Entry> {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Finds `key`, reporting the first missing path component (100) or the first
    /// component that is a file (104), as etcd's walk does.
    pub fn lookup(&self, key: &str, index: u64) -> Result<&Entry, V2Error> {
        if key == "/" {
            return Ok(&ROOT);
        }
        let mut found = &ROOT;
        let mut found_key = "/";
        for prefix in prefixes(key) {
            if !found.is_dir() {
                return Err(V2Error::new(ErrorCode::NotDir, found_key, index));
            }
            found = self
                .entries
                .get(prefix)
                .ok_or_else(|| V2Error::new(ErrorCode::KeyNotFound, prefix, index))?;
            found_key = prefix;
        }
        Ok(found)
    }

    /// Checks that every ancestor of `key` is a directory or absent (104 otherwise).
    pub fn check_parents(&self, key: &str, index: u64) -> Result<(), V2Error> {
        match ancestors(key).find(|p| self.entries.get(*p).is_some_and(|e| !e.is_dir())) {
            Some(file) => Err(V2Error::new(ErrorCode::NotDir, file, index)),
            None => Ok(()),
        }
    }

    /// Creates the missing ancestors of `key` as directories made at `index`.
    /// Call `check_parents` first.
    pub fn create_parents(&mut self, key: &str, index: u64) {
        for parent in ancestors(key) {
            if !self.entries.contains_key(parent) {
                let dir = Entry {
                    value: None,
                    created_index: index,
                    modified_index: index,
                    expire_at: None,
                };
                self.entries.insert(parent.to_string(), dir);
            }
        }
    }

    pub fn insert(&mut self, key: &str, entry: Entry) {
        // Forget the old expiry before recording the new one: they may be equal.
        let new_expiry = entry.expire_at;
        if let Some(old) = self.entries.insert(key.to_string(), entry) {
            self.forget_expiry(key, &old);
        }
        if let Some(at) = new_expiry {
            self.expiring.insert((at, key.to_string()));
        }
    }

    /// Changes value, modified index and expiry of an existing entry in place.
    pub fn rewrite(
        &mut self,
        key: &str,
        value: Option<String>,
        index: u64,
        expire_at: Option<u64>,
    ) {
        let Some(entry) = self.entries.get(key) else {
            return;
        };
        let created_index = entry.created_index;
        self.insert(
            key,
            Entry {
                value,
                created_index,
                modified_index: index,
                expire_at,
            },
        );
    }

    /// Removes `key` and everything below it.
    pub fn remove_subtree(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.forget_expiry(key, &old);
        }
        let below: Vec<String> = self.descendant_keys(key).map(str::to_string).collect();
        for child in below {
            if let Some(old) = self.entries.remove(&child) {
                self.forget_expiry(&child, &old);
            }
        }
    }

    pub fn has_children(&self, dir: &str) -> bool {
        self.descendant_keys(dir).next().is_some()
    }

    /// The earliest expiry at or before `now_ms`, if any.
    pub fn first_expired(&self, now_ms: u64) -> Option<String> {
        self.expiring
            .first()
            .filter(|(at, _)| *at <= now_ms)
            .map(|(_, key)| key.clone())
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.expiring.first().map(|(at, _)| *at)
    }

    /// The node as a `prevNode` or a listing child shows it: no children unless
    /// `recursive`, hidden children left out.
    /// `now_ms` fixes the remaining `ttl` shown.
    pub fn view(&self, key: &str, entry: &Entry, recursive: bool, now_ms: u64) -> NodeView {
        let nodes = if entry.is_dir() && recursive {
            self.child_views(key, true, now_ms)
        } else {
            None
        };
        NodeView {
            key: key.to_string(),
            value: entry.value.clone(),
            dir: entry.is_dir(),
            expiration_ms: entry.expire_at,
            ttl: entry
                .expire_at
                .map_or(0, |at| remaining_seconds(at, now_ms)),
            nodes,
            modified_index: entry.modified_index,
            created_index: entry.created_index,
        }
    }

    /// The visible (non-hidden) direct children of `dir`, each shown with `recursive`.
    pub fn child_views(&self, dir: &str, recursive: bool, now_ms: u64) -> Option<Vec<NodeView>> {
        let views: Vec<NodeView> = self
            .children(dir)
            .filter(|(key, _)| !is_hidden_name(key))
            .map(|(key, entry)| self.view(key, entry, recursive, now_ms))
            .collect();
        (!views.is_empty()).then_some(views)
    }

    /// Direct children of `dir`. Because every directory is an entry and precedes its own
    /// descendants, the first key at or after the cursor is always a direct child or a
    /// descendant of one; descendants are skipped by jumping past `child + "/"`.
    fn children<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        let prefix = child_prefix(dir);
        let mut cursor: Bound<String> = Bound::Included(prefix.clone());
        std::iter::from_fn(move || {
            loop {
                let (key, entry) = self
                    .entries
                    .range::<String, _>((cursor.clone(), Bound::Unbounded))
                    .next()?;
                if !key.starts_with(&prefix) {
                    return None;
                }
                match key[prefix.len()..].find('/') {
                    None => {
                        cursor = Bound::Excluded(key.clone());
                        return Some((key.as_str(), entry));
                    }
                    // A descendant of a child: '0' is the byte after '/', so this skips
                    // exactly the child's subtree and no sibling.
                    Some(slash) => {
                        cursor = Bound::Included(format!("{}0", &key[..prefix.len() + slash]))
                    }
                }
            }
        })
    }

    fn descendant_keys<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = child_prefix(dir);
        self.entries
            .range::<String, _>((Bound::Included(prefix.clone()), Bound::Unbounded))
            .map(|(k, _)| k.as_str())
            .take_while(move |k| k.starts_with(&prefix))
    }

    fn forget_expiry(&mut self, key: &str, old: &Entry) {
        if let Some(at) = old.expire_at {
            self.expiring.remove(&(at, key.to_string()));
        }
    }
}

/// Every ancestor of `key` below the root, shortest first: `/a/b/c` gives `/a`, `/a/b`.
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/').skip(1).map(|(i, _)| &key[..i])
}

/// The ancestors of `key` and `key` itself.
fn prefixes(key: &str) -> impl Iterator<Item = &str> {
    ancestors(key).chain(std::iter::once(key))
}

fn child_prefix(dir: &str) -> String {
    if dir == "/" {
        "/".to_string()
    } else {
        format!("{dir}/")
    }
}

/// A key whose last component starts with `_` is hidden from listings.
fn is_hidden_name(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with('_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(index: u64) -> Entry {
        Entry {
            value: Some("v".into()),
            created_index: index,
            modified_index: index,
            expire_at: None,
        }
    }

    fn tree_with(keys: &[&str]) -> Tree {
        let mut t = Tree::default();
        for (i, k) in keys.iter().enumerate() {
            t.create_parents(k, i as u64 + 1);
            t.insert(k, file(i as u64 + 1));
        }
        t
    }

    #[test]
    fn prefixes_walk_from_the_top() {
        assert_eq!(
            prefixes("/a/b/c").collect::<Vec<_>>(),
            ["/a", "/a/b", "/a/b/c"]
        );
        assert_eq!(prefixes("/a").collect::<Vec<_>>(), ["/a"]);
    }

    #[test]
    fn children_skip_grandchildren_but_keep_siblings_that_sort_between() {
        let t = tree_with(&["/a/x/y", "/a/x-1", "/a/x0", "/ab"]);
        let names: Vec<&str> = t.children("/a").map(|(k, _)| k).collect();
        assert_eq!(names, ["/a/x", "/a/x-1", "/a/x0"]);
        let top: Vec<&str> = t.children("/").map(|(k, _)| k).collect();
        assert_eq!(top, ["/a", "/ab"]);
    }

    #[test]
    fn lookup_names_the_missing_or_file_component() {
        let t = tree_with(&["/a/f"]);
        assert_eq!(t.lookup("/a/g/h", 9).unwrap_err().cause, "/a/g");
        let err = t.lookup("/a/f/h", 9).unwrap_err();
        assert_eq!((err.code, err.cause.as_str()), (ErrorCode::NotDir, "/a/f"));
    }

    #[test]
    fn removing_a_subtree_forgets_its_expiries() {
        let mut t = tree_with(&["/d/k"]);
        t.rewrite("/d/k", Some("v".into()), 5, Some(1000));
        assert_eq!(t.next_expiry(), Some(1000));
        t.remove_subtree("/d");
        assert_eq!((t.len(), t.next_expiry()), (0, None));
    }

    #[test]
    fn hidden_children_are_left_out_of_listings() {
        let t = tree_with(&["/a/_h", "/a/v"]);
        let views = t.child_views("/a", false, 0).unwrap();
        assert_eq!(
            views.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
            ["/a/v"]
        );
    }
}
