//! v2's view of the keyspace: a tree of directories and files named by clean paths.
//!
//! v2 path `/a/b` is key `/a/b`, byte for byte. Directories are explicit entries, as
//! etcd's v2 store has them, so a listing walks the ordered keys under `dir/`. Keys that
//! v3 wrote and that are not clean v2 paths (`a`, `/a//b`, `/a/`, invalid UTF-8) are not
//! v2 nodes: listings skip them.

use crate::entry::{Entry, Meta, Revision};
use crate::keyspace::Keyspace;
use crate::{Bytes, ErrorCode, NodeView, V2Error, remaining_seconds};
use std::ops::Bound;
use std::sync::LazyLock;

/// The root directory: it always exists, is never written, and has index 0.
static ROOT: LazyLock<Entry> = LazyLock::new(|| {
    let meta = Meta {
        dir: true,
        ..Meta::default()
    };
    Entry::new(b"/", None, meta)
});

/// Finds `key`, reporting the first missing path component (100) or the first component
/// that is a file (104), as etcd's walk does.
pub(crate) fn lookup<'a>(ks: &'a Keyspace, key: &str, index: u64) -> Result<&'a Entry, V2Error> {
    if key == "/" {
        return Ok(&ROOT);
    }
    let mut found: &Entry = &ROOT;
    let mut found_key = "/";
    for prefix in prefixes(key) {
        if !found.dir() {
            return Err(V2Error::new(ErrorCode::NotDir, found_key, index));
        }
        found = ks
            .get(prefix.as_bytes())
            .ok_or_else(|| V2Error::new(ErrorCode::KeyNotFound, prefix, index))?;
        found_key = prefix;
    }
    Ok(found)
}

/// Checks that every ancestor of `key` is a directory or absent (104 otherwise).
pub(crate) fn check_parents(ks: &Keyspace, key: &str, index: u64) -> Result<(), V2Error> {
    match ancestors(key).find(|p| ks.get(p.as_bytes()).is_some_and(|e| !e.dir())) {
        Some(file) => Err(V2Error::new(ErrorCode::NotDir, file, index)),
        None => Ok(()),
    }
}

/// Creates the missing ancestors of `key` as directories made at `revision`. Ancestors
/// that are files stay files (a v3 put below a v2 file is allowed; v2 then answers 104).
pub(crate) fn create_parents(ks: &mut Keyspace, key: &str, revision: Revision) {
    for parent in ancestors(key) {
        if ks.get(parent.as_bytes()).is_none() {
            let meta = Meta {
                dir: true,
                create_revision: revision,
                mod_revision: revision,
                ..Meta::default()
            };
            ks.put(Entry::new(parent.as_bytes(), None, meta), revision);
        }
    }
}

/// Removes `key` and everything below it at `revision`, v3 keys included; returns the
/// removed entries (for their leases).
pub(crate) fn remove_subtree(ks: &mut Keyspace, key: &str, revision: Revision) -> Vec<Entry> {
    let below: Vec<Entry> = descendants(ks, key).cloned().collect();
    let mut removed = Vec::new();
    if let Some(entry) = ks.remove(key.as_bytes(), revision) {
        removed.push(entry);
    }
    for child in below {
        if let Some(entry) = ks.remove(child.key(), revision) {
            removed.push(entry);
        }
    }
    removed
}

pub(crate) fn has_children(ks: &Keyspace, dir: &str) -> bool {
    descendants(ks, dir).next().is_some()
}

/// The node as a `prevNode` or a listing child shows it: no children unless `recursive`,
/// hidden children left out. `now_ms` fixes the remaining `ttl` shown.
pub(crate) fn view(
    ks: &Keyspace,
    key: &str,
    entry: &Entry,
    recursive: bool,
    now_ms: u64,
) -> NodeView {
    let meta = entry.meta();
    let nodes = if meta.dir && recursive {
        child_views(ks, key, true, now_ms)
    } else {
        None
    };
    NodeView {
        key: key.to_string(),
        value: v2_value(entry),
        dir: meta.dir,
        expiration_ms: meta.expire_at,
        ttl: meta.expire_at.map_or(0, |at| remaining_seconds(at, now_ms)),
        nodes,
        modified_index: meta.mod_revision as u64,
        created_index: meta.create_revision as u64,
    }
}

/// A file's value as v2 text (invalid UTF-8 replaced by U+FFFD); `None` for a directory.
pub(crate) fn v2_value(entry: &Entry) -> Option<String> {
    if entry.dir() {
        None
    } else {
        entry
            .value()
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

/// The visible (non-hidden) direct children of `dir`, each shown with `recursive`.
pub(crate) fn child_views(
    ks: &Keyspace,
    dir: &str,
    recursive: bool,
    now_ms: u64,
) -> Option<Vec<NodeView>> {
    let views: Vec<NodeView> = children(ks, dir)
        .filter(|(key, _)| !is_hidden_name(key))
        .map(|(key, entry)| view(ks, key, entry, recursive, now_ms))
        .collect();
    (!views.is_empty()).then_some(views)
}

/// Direct children of `dir` that are v2 nodes. Because every v2 directory is an entry and
/// precedes its own descendants, the first key at or after the cursor is a direct child or
/// a descendant of one; descendants are skipped by jumping past `child + "/"`.
fn children<'a>(ks: &'a Keyspace, dir: &str) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
    let prefix = child_prefix(dir).into_bytes();
    let mut cursor: Bound<Bytes> = Bound::Included(Bytes::from(prefix.as_slice()));
    std::iter::from_fn(move || {
        loop {
            let entry = ks.first_from(cursor.as_ref().map(|k| k.as_slice()))?;
            let key = entry.key();
            if !key.starts_with(&prefix) {
                return None;
            }
            match key[prefix.len()..].iter().position(|b| *b == b'/') {
                None => {
                    cursor = Bound::Excluded(Bytes::from(key));
                    match std::str::from_utf8(key) {
                        Ok(name) if is_node_name(&name[prefix.len()..]) => {
                            return Some((name, entry));
                        }
                        _ => continue,
                    }
                }
                // A descendant of a child: '0' is the byte after '/', so this skips
                // exactly the child's subtree and no sibling.
                Some(slash) => {
                    let mut next = key[..prefix.len() + slash].to_vec();
                    next.push(b'0');
                    cursor = Bound::Included(Bytes::from(next));
                }
            }
        }
    })
}

/// A path component v2 can name: not empty, not `.` or `..`.
fn is_node_name(name: &str) -> bool {
    !matches!(name, "" | "." | "..")
}

fn descendants<'a>(ks: &'a Keyspace, dir: &str) -> impl Iterator<Item = &'a Entry> + 'a {
    let prefix = child_prefix(dir).into_bytes();
    ks.range(&prefix, None)
        .take_while(move |e| e.key().starts_with(&prefix))
}

/// Every ancestor of `key` below the root, shortest first: `/a/b/c` gives `/a`, `/a/b`.
pub(crate) fn ancestors(key: &str) -> impl Iterator<Item = &str> {
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

/// Whether v2 can name `key`: a clean absolute path in UTF-8 other than the root.
pub fn is_v2_path(key: &[u8]) -> bool {
    std::str::from_utf8(key).is_ok_and(|k| k != "/" && crate::clean_key(k) == k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str, rev: Revision) -> Entry {
        Entry::new_key(key, "v", rev)
    }

    fn tree_with(keys: &[&str]) -> Keyspace {
        let mut ks = Keyspace::default();
        for k in keys {
            let rev = ks.revision() + 1;
            create_parents(&mut ks, k, rev);
            ks.put(file(k, rev), rev);
            ks.advance_to(rev);
        }
        ks
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
        let ks = tree_with(&["/a/x/y", "/a/x-1", "/a/x0", "/ab"]);
        let names: Vec<&str> = children(&ks, "/a").map(|(k, _)| k).collect();
        assert_eq!(names, ["/a/x", "/a/x-1", "/a/x0"]);
        let top: Vec<&str> = children(&ks, "/").map(|(k, _)| k).collect();
        assert_eq!(top, ["/a", "/ab"]);
    }

    #[test]
    fn keys_v2_cannot_name_are_not_children() {
        let mut ks = tree_with(&["/a/b"]);
        for weird in [&b"/a//c"[..], b"/a/.", b"/a/\xff", b"a"] {
            let rev = ks.revision() + 1;
            let meta = file("", rev).meta();
            ks.put(Entry::new(weird, Some(b"v"), meta), rev);
            ks.advance_to(rev);
        }
        let names: Vec<&str> = children(&ks, "/a").map(|(k, _)| k).collect();
        assert_eq!(names, ["/a/b"]);
        assert!(!is_v2_path(b"/a/") && !is_v2_path(b"a") && is_v2_path(b"/a/b"));
    }

    #[test]
    fn lookup_names_the_missing_or_file_component() {
        let ks = tree_with(&["/a/f"]);
        assert_eq!(lookup(&ks, "/a/g/h", 9).unwrap_err().cause, "/a/g");
        let err = lookup(&ks, "/a/f/h", 9).unwrap_err();
        assert_eq!((err.code, err.cause.as_str()), (ErrorCode::NotDir, "/a/f"));
    }

    #[test]
    fn removing_a_subtree_forgets_its_expiries() {
        let mut ks = tree_with(&["/d/k"]);
        let meta = Meta {
            expire_at: Some(1000),
            ..file("/d/k", 5).meta()
        };
        ks.put(Entry::new(b"/d/k", Some(b"v"), meta), 5);
        assert_eq!(ks.next_expiry(), Some(1000));
        remove_subtree(&mut ks, "/d", 6);
        assert_eq!((ks.len(), ks.next_expiry()), (0, None));
    }

    #[test]
    fn hidden_children_are_left_out_of_listings() {
        let ks = tree_with(&["/a/_h", "/a/v"]);
        let views = child_views(&ks, "/a", false, 0).unwrap();
        assert_eq!(
            views.iter().map(|v| v.key.as_str()).collect::<Vec<_>>(),
            ["/a/v"]
        );
    }
}
