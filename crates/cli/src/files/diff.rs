//! The three-way comparison behind `status`, `push` and `pull`: each path's local entry and
//! remote entry against its base (what both sides held at the last sync). Changed on one
//! side only: that side's change travels; on both sides to different things: a conflict;
//! on both sides to the same thing: converged, nothing to do but record it.

use super::local::Entry;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Modify,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub path: String,
    pub op: Op,
}

/// How both sides changed a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Clash {
    BothAdded,
    BothModified,
    /// Deleted here, modified in the share.
    DeletedLocally,
    /// Modified here, deleted in the share.
    DeletedRemotely,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    pub path: String,
    pub op: Clash,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diff {
    pub push: Vec<Change>,
    pub pull: Vec<Change>,
    pub conflicts: Vec<Conflict>,
    /// Changed on both sides to the same entry.
    pub converged: Vec<String>,
}

impl Diff {
    /// Keep only the paths `pattern` names (the path itself or a directory above it).
    pub fn only(mut self, pattern: Option<&str>) -> Diff {
        let Some(pattern) = pattern.map(|p| p.trim_end_matches('/')) else {
            return self;
        };
        let wanted = |path: &str| {
            pattern.is_empty()
                || path == pattern
                || path
                    .strip_prefix(pattern)
                    .is_some_and(|r| r.starts_with('/'))
        };
        self.push.retain(|c| wanted(&c.path));
        self.pull.retain(|c| wanted(&c.path));
        self.conflicts.retain(|c| wanted(&c.path));
        self.converged.retain(|p| wanted(p));
        self
    }

    pub fn in_sync(&self) -> bool {
        self.push.is_empty() && self.pull.is_empty() && self.conflicts.is_empty()
    }
}

type Tree = BTreeMap<String, Entry>;

pub fn three_way(local: &Tree, base: &Tree, remote: &Tree) -> Diff {
    let paths: BTreeSet<&String> = local
        .keys()
        .chain(base.keys())
        .chain(remote.keys())
        .collect();
    let mut diff = Diff::default();
    for path in paths {
        let (l, b, r) = (local.get(path), base.get(path), remote.get(path));
        let (here, there) = (l != b, r != b);
        let path = path.clone();
        match (here, there) {
            (false, false) => {}
            (true, false) => diff.push.push(Change { path, op: op(b, l) }),
            (false, true) => diff.pull.push(Change { path, op: op(b, r) }),
            (true, true) if l == r => diff.converged.push(path),
            (true, true) => {
                let op = match (b, l, r) {
                    (None, _, _) => Clash::BothAdded,
                    (Some(_), None, _) => Clash::DeletedLocally,
                    (Some(_), _, None) => Clash::DeletedRemotely,
                    _ => Clash::BothModified,
                };
                diff.conflicts.push(Conflict { path, op });
            }
        }
    }
    diff
}

fn op(from: Option<&Entry>, to: Option<&Entry>) -> Op {
    match (from, to) {
        (None, _) => Op::Add,
        (_, None) => Op::Delete,
        _ => Op::Modify,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(content: &str) -> Entry {
        Entry::File {
            sha256: content.to_string(),
            mode: "0644".into(),
            size: content.len() as u64,
        }
    }

    fn tree(items: &[(&str, &str)]) -> Tree {
        items
            .iter()
            .map(|(path, content)| (path.to_string(), file(content)))
            .collect()
    }

    #[test]
    fn a_local_edit_is_to_push_and_a_remote_edit_to_pull() {
        let base = tree(&[("bin/apache2", "v1"), ("bin/ntp", "v1")]);
        let local = tree(&[("bin/apache2", "v2"), ("bin/ntp", "v1")]);
        let remote = tree(&[("bin/apache2", "v1"), ("bin/ntp", "v3"), ("new", "x")]);
        let diff = three_way(&local, &base, &remote);
        assert_eq!(
            diff.push,
            [Change {
                path: "bin/apache2".into(),
                op: Op::Modify
            }]
        );
        assert_eq!(
            diff.pull,
            [
                Change {
                    path: "bin/ntp".into(),
                    op: Op::Modify
                },
                Change {
                    path: "new".into(),
                    op: Op::Add
                }
            ]
        );
        assert!(diff.conflicts.is_empty());
    }

    #[test]
    fn changes_on_both_sides_conflict_unless_they_agree() {
        let base = tree(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1")]);
        let local = tree(&[("a", "2"), ("b", "2"), ("d", "2"), ("e", "1")]);
        let remote = tree(&[("a", "3"), ("b", "2"), ("c", "3"), ("e", "2")]);
        let diff = three_way(&local, &base, &remote);
        let clashes: Vec<_> = diff
            .conflicts
            .iter()
            .map(|c| (c.path.as_str(), c.op))
            .collect();
        assert_eq!(
            clashes,
            [
                ("a", Clash::BothModified),
                ("c", Clash::DeletedLocally),
                ("d", Clash::DeletedRemotely),
                ("e", Clash::BothAdded)
            ]
        );
        assert_eq!(diff.converged, ["b"]);
        assert!(diff.push.is_empty() && diff.pull.is_empty());
    }

    #[test]
    fn a_mode_change_is_a_change() {
        let base = tree(&[("run", "x")]);
        let mut local = base.clone();
        local.insert(
            "run".into(),
            Entry::File {
                sha256: "x".into(),
                mode: "0755".into(),
                size: 1,
            },
        );
        let diff = three_way(&local, &base, &base);
        assert_eq!(
            diff.push,
            [Change {
                path: "run".into(),
                op: Op::Modify
            }]
        );
    }

    #[test]
    fn a_pattern_names_a_path_or_a_directory_above_it() {
        let local = tree(&[("bin/ntp", "1"), ("bin/ntp.conf", "1"), ("bin/x/y", "1")]);
        let diff = three_way(&local, &Tree::new(), &Tree::new());
        let paths = |d: Diff| d.push.into_iter().map(|c| c.path).collect::<Vec<_>>();
        assert_eq!(paths(diff.clone().only(Some("bin/ntp"))), ["bin/ntp"]);
        assert_eq!(paths(diff.clone().only(Some("bin/"))).len(), 3);
        assert_eq!(paths(diff.only(Some("bin/x"))), ["bin/x/y"]);
    }
}
