//! Which members a query is for (`serf query -node NAME -tag KEY=REGEXP`). As in Serf, each
//! filter travels as a type byte and a msgpack body: 0 a list of node names, 1 a
//! `{Tag, Expr}` pair. A member answers only if every filter accepts it. A tag pattern is
//! searched anywhere in the tag's value (Serf's `regexp.MatchString`: `role=we` matches
//! `web`; anchor it with `^…$` for an exact match); a missing tag is the empty string.

use crate::identity::NodeId;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use std::collections::BTreeMap;
use tracing::warn;

const NODE_FILTER: u8 = 0;
const TAG_FILTER: u8 = 1;

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagFilter {
    tag: String,
    expr: String,
}

/// The wire form of `-node` names (one filter, if any) and `-tag` patterns (one each).
pub fn encode(nodes: &[String], tags: &BTreeMap<String, String>) -> Vec<ByteBuf> {
    let mut filters = Vec::new();
    if !nodes.is_empty() {
        filters.push(typed(NODE_FILTER, &nodes));
    }
    for (tag, expr) in tags {
        let filter = TagFilter {
            tag: tag.clone(),
            expr: expr.clone(),
        };
        filters.push(typed(TAG_FILTER, &filter));
    }
    filters
}

fn typed<T: Serialize>(kind: u8, body: &T) -> ByteBuf {
    let mut out = vec![kind];
    out.extend(rmp_serde::to_vec_named(body).expect("filters always encode"));
    ByteBuf::from(out)
}

/// Whether `local` should process a query with these filters. A filter that cannot be
/// read, or a bad pattern, excludes this member (with a warning), as in Serf.
pub fn accepts(filters: &[ByteBuf], local: &NodeId) -> bool {
    filters.iter().all(|filter| accepts_one(filter, local))
}

fn accepts_one(filter: &[u8], local: &NodeId) -> bool {
    match filter.split_first() {
        Some((&NODE_FILTER, body)) => match rmp_serde::from_slice::<Vec<String>>(body) {
            Ok(nodes) => nodes.contains(&local.name),
            Err(e) => {
                warn!("failed to decode node filter: {e}");
                false
            }
        },
        Some((&TAG_FILTER, body)) => match rmp_serde::from_slice::<TagFilter>(body) {
            Ok(filter) => match Regex::new(&filter.expr) {
                Ok(pattern) => {
                    pattern.is_match(local.tags.get(&filter.tag).map_or("", String::as_str))
                }
                Err(e) => {
                    warn!("failed to compile filter regex ({}): {e}", filter.expr);
                    false
                }
            },
            Err(e) => {
                warn!("failed to decode tag filter: {e}");
                false
            }
        },
        Some((kind, _)) => {
            warn!("query has unrecognized filter type: {kind}");
            false
        }
        None => {
            warn!("query has an empty filter");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|&(k, v)| (k.into(), v.into())).collect()
    }

    fn node(name: &str, pairs: &[(&str, &str)]) -> NodeId {
        NodeId {
            name: name.into(),
            tags: tags(pairs),
            ..NodeId::unknown_at("127.0.0.1:7946".parse().unwrap())
        }
    }

    #[test]
    fn no_filter_accepts_everyone() {
        assert!(accepts(&encode(&[], &BTreeMap::new()), &node("a", &[])));
    }

    #[test]
    fn node_names_must_match_exactly() {
        let filters = encode(&["a".into(), "c".into()], &BTreeMap::new());
        assert!(accepts(&filters, &node("a", &[])));
        assert!(accepts(&filters, &node("c", &[])));
        assert!(!accepts(&filters, &node("b", &[])));
        assert!(!accepts(&filters, &node("aa", &[])));
    }

    #[test]
    fn tag_patterns_are_searched_like_serfs_and_all_must_match() {
        let web = node("a", &[("role", "web"), ("dc", "east")]);
        assert!(accepts(&encode(&[], &tags(&[("role", "we")])), &web));
        assert!(!accepts(&encode(&[], &tags(&[("role", "^we$")])), &web));
        assert!(accepts(
            &encode(&[], &tags(&[("role", "web"), ("dc", "e.*")])),
            &web
        ));
        assert!(!accepts(
            &encode(&[], &tags(&[("role", "web"), ("dc", "west")])),
            &web
        ));
        // a missing tag is "": only patterns that match nothing accept it
        assert!(!accepts(&encode(&[], &tags(&[("rack", "1")])), &web));
        assert!(accepts(&encode(&[], &tags(&[("rack", "^$")])), &web));
        assert!(!accepts(&encode(&[], &tags(&[("role", "(")])), &web));
    }

    #[test]
    fn unreadable_filters_exclude_the_member() {
        let me = node("a", &[]);
        for filter in [&b""[..], b"\x07", b"\x00\xc1", b"\x01\x93"] {
            assert!(
                !accepts(&[ByteBuf::from(filter.to_vec())], &me),
                "{filter:?}"
            );
        }
    }
}
