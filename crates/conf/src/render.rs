//! A tree as one JSON document (docs/conf.md, "Rendering rules"):
//!
//! | node | renders as |
//! |---|---|
//! | leaf | a string; typed by its declared shape; with [`Values::Json`] a JSON literal |
//! | directory declared a list whose children are all empty leaves (`join/10.0.0.1`) | array of the names |
//! | directory of decimal names (`0,1,2`, v2 in-order keys) | array, numeric order |
//! | other directory declared a list | array, creation order |
//! | any other directory | object, keys sorted; `{}` when empty (`[]` if declared a list) |

use crate::error::RenderError;
use crate::options::{Options, Shape, Values};
use crate::tree::{Tree, is_decimal, join};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// The document of `tree` (the prefix's root directory).
pub fn render(tree: &Tree, options: &Options) -> Result<Value, RenderError> {
    node(tree, "", options)
}

fn node(tree: &Tree, path: &str, options: &Options) -> Result<Value, RenderError> {
    let declared = options.shape(path);
    match tree {
        Tree::Leaf { value, .. } => leaf(value, path, declared, options.values),
        Tree::Dir { children, .. } => {
            let visible: Vec<&(String, Tree)> = children
                .iter()
                .filter(|(name, _)| !options.skips(name))
                .collect();
            match declared {
                Some(shape @ (Shape::Text | Shape::Int | Shape::Bool)) => {
                    Err(RenderError::Directory {
                        path: path.to_string(),
                        expected: shape.expected(),
                    })
                }
                Some(Shape::List) if is_name_set(&visible) => Ok(Value::Array(
                    visible
                        .iter()
                        .map(|(name, _)| Value::String(name.clone()))
                        .collect(),
                )),
                Some(Shape::Map) => object(&visible, path, options),
                _ if !visible.is_empty() && visible.iter().all(|(name, _)| is_decimal(name)) => {
                    let mut numbered = visible.clone();
                    numbered.sort_by(|a, b| numeric(&a.0, &b.0));
                    array(&numbered, path, options)
                }
                Some(Shape::List) => array(&visible, path, options),
                None => object(&visible, path, options),
            }
        }
    }
}

/// A declared list of bare names: every child an empty leaf, and not all of them numbers
/// (`0`, `1` with empty values are two empty strings).
fn is_name_set(children: &[&(String, Tree)]) -> bool {
    !children.is_empty()
        && !children.iter().all(|(name, _)| is_decimal(name))
        && children
            .iter()
            .all(|(_, child)| matches!(child, Tree::Leaf { value, .. } if value.is_empty()))
}

fn array(
    children: &[&(String, Tree)],
    path: &str,
    options: &Options,
) -> Result<Value, RenderError> {
    children
        .iter()
        .map(|(name, child)| node(child, &join(path, name), options))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn object(
    children: &[&(String, Tree)],
    path: &str,
    options: &Options,
) -> Result<Value, RenderError> {
    let mut sorted = children.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut map = Map::new();
    for (name, child) in sorted {
        map.insert(name.clone(), node(child, &join(path, name), options)?);
    }
    Ok(Value::Object(map))
}

/// Decimal names by value (`2` before `10`; leading zeros ignored), then by spelling.
fn numeric(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    ta.len()
        .cmp(&tb.len())
        .then_with(|| ta.cmp(tb))
        .then_with(|| a.cmp(b))
}

fn leaf(
    value: &str,
    path: &str,
    declared: Option<Shape>,
    values: Values,
) -> Result<Value, RenderError> {
    let wrong = |shape: Shape| RenderError::Type {
        path: path.to_string(),
        expected: shape.expected(),
        value: value.to_string(),
    };
    match declared {
        Some(Shape::Text) => Ok(Value::String(value.to_string())),
        Some(Shape::Int) => value
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| wrong(Shape::Int)),
        Some(Shape::Bool) => match value {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(wrong(Shape::Bool)),
        },
        // A whole list or map may be kept in one key as its JSON.
        Some(shape @ (Shape::List | Shape::Map)) => match serde_json::from_str(value) {
            Ok(parsed @ Value::Array(_)) if shape == Shape::List => Ok(parsed),
            Ok(parsed @ Value::Object(_)) if shape == Shape::Map => Ok(parsed),
            _ => Err(wrong(shape)),
        },
        None => Ok(match values {
            Values::String => Value::String(value.to_string()),
            Values::Json => {
                serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Entry;
    use serde_json::json;

    fn tree(entries: Vec<Entry>) -> Tree {
        Tree::from_entries(entries).unwrap()
    }

    /// Seed 000's `/serf/manager`, indexes as its listing shows them.
    fn seed() -> Tree {
        tree(vec![
            Entry::leaf("node_name", "manager", 3),
            Entry::leaf("bind", "192.168.39.3", 4),
            Entry::dir("keys", 7),
            Entry::leaf("keys/role", "develop", 8),
            Entry::leaf("keys/network", "local", 9),
            Entry::leaf("keys/test", "develop", 10),
            Entry::dir("event_handlers", 12),
            Entry::leaf("event_handlers/00000000000000000013", "test2", 13),
            Entry::leaf("event_handlers/00000000000000000014", "test2", 14),
            Entry::leaf("event_handlers/00000000000000000015", "test3", 15),
            Entry::leaf("event_handlers/00000000000000000016", "aaa", 16),
        ])
    }

    #[test]
    fn seed_000_renders_as_its_document() {
        let document = render(&seed(), &Options::default()).unwrap();
        assert_eq!(
            document,
            json!({"bind": "192.168.39.3", "event_handlers": ["test2", "test2", "test3", "aaa"],
                   "node_name": "manager",
                   "keys": {"role": "develop", "network": "local", "test": "develop"}})
        );
    }

    #[test]
    fn object_keys_are_sorted_for_stable_bytes() {
        let document = render(&seed(), &Options::default()).unwrap();
        let keys: Vec<&String> = document.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["bind", "event_handlers", "keys", "node_name"]);
    }

    #[test]
    fn a_declared_list_keeps_creation_order_and_numbers_keep_numeric_order() {
        let t = tree(vec![
            Entry::leaf("handlers/zeta", "first", 3),
            Entry::leaf("handlers/alpha", "second", 4),
            Entry::leaf("n/10", "ten", 5),
            Entry::leaf("n/2", "two", 6),
        ]);
        let options = Options::default().declare("handlers", Shape::List);
        assert_eq!(
            render(&t, &options).unwrap(),
            json!({"handlers": ["first", "second"], "n": ["two", "ten"]})
        );
    }

    #[test]
    fn a_declared_list_of_empty_leaves_is_its_names() {
        let t = tree(vec![
            Entry::leaf("start_join/10.0.0.2", "", 3),
            Entry::leaf("start_join/10.0.0.1", "", 4),
            Entry::leaf("other/a", "", 5),
        ]);
        let options = Options::default().declare("start_join", Shape::List);
        assert_eq!(
            render(&t, &options).unwrap(),
            json!({"start_join": ["10.0.0.2", "10.0.0.1"], "other": {"a": ""}})
        );
    }

    #[test]
    fn empty_directories_are_empty_objects_or_declared_empty_lists() {
        let t = tree(vec![Entry::dir("a", 2), Entry::dir("b", 3)]);
        let options = Options::default().declare("b", Shape::List);
        assert_eq!(render(&t, &options).unwrap(), json!({"a": {}, "b": []}));
    }

    #[test]
    fn a_declared_map_stays_an_object_even_with_numbered_keys() {
        let t = tree(vec![Entry::leaf("tags/0", "x", 2)]);
        let options = Options::default().declare("tags", Shape::Map);
        assert_eq!(render(&t, &options).unwrap(), json!({"tags": {"0": "x"}}));
    }

    #[test]
    fn json_values_parse_whole_literals_only() {
        let t = tree(vec![
            Entry::leaf("n", "8080", 2),
            Entry::leaf("b", "true", 3),
            Entry::leaf("s", "8080 tcp", 4),
            Entry::leaf("q", "\"8080\"", 5),
            Entry::leaf("l", "[1,2]", 6),
        ]);
        let json_values = Options::default().with_values(Values::Json);
        assert_eq!(
            render(&t, &json_values).unwrap(),
            json!({"b": true, "l": [1, 2], "n": 8080, "q": "8080", "s": "8080 tcp"})
        );
        assert_eq!(render(&t, &Options::default()).unwrap()["n"], json!("8080"));
    }

    #[test]
    fn the_schema_types_leaves_and_refuses_what_breaks_it() {
        let t = tree(vec![
            Entry::leaf("retry_max_attempts", "3", 2),
            Entry::leaf("replay_on_join", "true", 3),
            Entry::leaf("node_name", "123", 4),
        ]);
        let options = Options::default().with_values(Values::Json).schema([
            ("retry_max_attempts", Shape::Int),
            ("replay_on_join", Shape::Bool),
            ("node_name", Shape::Text),
        ]);
        assert_eq!(
            render(&t, &options).unwrap(),
            json!({"node_name": "123", "replay_on_join": true, "retry_max_attempts": 3})
        );
        let bad = tree(vec![Entry::leaf("retry_max_attempts", "three", 2)]);
        assert_eq!(
            render(&bad, &options).unwrap_err().to_string(),
            "key 'retry_max_attempts': expected an integer, found 'three'"
        );
        let dir = tree(vec![Entry::leaf("node_name/x", "1", 2)]);
        assert_eq!(
            render(&dir, &options).unwrap_err().to_string(),
            "key 'node_name': expected a string, found a directory"
        );
    }

    #[test]
    fn hidden_names_are_skipped_unless_asked_for() {
        let t = tree(vec![
            Entry::leaf("a", "1", 2),
            Entry::leaf("_musubi/x", "2", 3),
        ]);
        assert_eq!(render(&t, &Options::default()).unwrap(), json!({"a": "1"}));
        assert_eq!(
            render(&t, &Options::default().with_hidden(true)).unwrap(),
            json!({"_musubi": {"x": "2"}, "a": "1"})
        );
    }
}
