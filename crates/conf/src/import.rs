//! A document as the keys that render back to it: objects become directories, arrays
//! directories of `0..n-1`, strings their text, other values their JSON text (typed by the
//! declared shape, or with [`Values::Json`], so that they render as the same JSON).

use crate::error::ImportError;
use crate::options::{Options, Shape, Values};
use crate::tree::{is_decimal, join};
use serde_json::Value;

/// The keys a document needs, parents before children, in the document's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// `(path below the prefix, node)`; the root itself is not listed.
    pub nodes: Vec<(String, DesiredNode)>,
    /// The document's top is an array (its keys must all be numbers).
    pub root_is_array: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DesiredNode {
    Leaf(String),
    /// A directory; `array` when it holds an array's elements (stray keys in it would
    /// change the array, so an import removes them even without `--prune`).
    Dir {
        array: bool,
    },
}

impl Desired {
    /// The node wanted at `path`.
    pub fn get(&self, path: &str) -> Option<&DesiredNode> {
        self.nodes
            .iter()
            .find(|(wanted, _)| wanted == path)
            .map(|(_, node)| node)
    }
}

/// The keys of `document`, or why it cannot be imported without changing on render.
pub fn import(document: &Value, options: &Options) -> Result<Desired, ImportError> {
    let root_is_array = match document {
        Value::Object(_) => false,
        Value::Array(_) => true,
        _ => return Err(ImportError::NotAContainer),
    };
    let mut desired = Desired {
        nodes: Vec::new(),
        root_is_array,
    };
    children(document, "", options, &mut desired.nodes)?;
    Ok(desired)
}

/// The nodes below the container `value` at `path`.
fn children(
    value: &Value,
    path: &str,
    options: &Options,
    out: &mut Vec<(String, DesiredNode)>,
) -> Result<(), ImportError> {
    let declared = options.shape(path);
    match value {
        Value::Object(map) => {
            if !map.is_empty() && declared != Some(Shape::Map) && map.keys().all(|k| is_decimal(k))
            {
                return Err(ImportError::NumberedObject {
                    path: path.to_string(),
                });
            }
            for (name, child) in map {
                check_name(path, name, options)?;
                one(child, &join(path, name), options, out)?;
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                one(child, &join(path, &index.to_string()), options, out)?;
            }
        }
        _ => unreachable!("only containers have children"),
    }
    Ok(())
}

fn one(
    value: &Value,
    path: &str,
    options: &Options,
    out: &mut Vec<(String, DesiredNode)>,
) -> Result<(), ImportError> {
    let declared = options.shape(path);
    let wrong = |shape: Shape| ImportError::Type {
        path: path.to_string(),
        expected: shape.expected(),
    };
    match (value, declared) {
        (
            Value::Object(_),
            Some(shape @ (Shape::Text | Shape::Int | Shape::Bool | Shape::List)),
        )
        | (Value::Array(_), Some(shape @ (Shape::Text | Shape::Int | Shape::Bool | Shape::Map))) => {
            Err(wrong(shape))
        }
        (Value::Object(_) | Value::Array(_), _) => {
            out.push((
                path.to_string(),
                DesiredNode::Dir {
                    array: value.is_array(),
                },
            ));
            children(value, path, options, out)
        }
        (scalar, declared) => {
            let text = leaf_text(scalar, declared, options.values)
                .ok_or_else(|| wrong(declared.expect("only a declared shape refuses a scalar")))?;
            out.push((path.to_string(), DesiredNode::Leaf(text)));
            Ok(())
        }
    }
}

/// The stored text of a scalar, `None` when it breaks the declared shape.
fn leaf_text(value: &Value, declared: Option<Shape>, values: Values) -> Option<String> {
    match (declared, value) {
        (Some(Shape::Text), Value::String(text)) => Some(text.clone()),
        (Some(Shape::Int), Value::Number(n)) if n.is_i64() => Some(n.to_string()),
        (Some(Shape::Bool), Value::Bool(b)) => Some(b.to_string()),
        (Some(_), _) => None,
        // A string that is itself a JSON literal is stored quoted, or it would render as
        // that literal.
        (None, Value::String(text))
            if values == Values::Json && serde_json::from_str::<Value>(text).is_ok() =>
        {
            Some(Value::String(text.clone()).to_string())
        }
        (None, Value::String(text)) => Some(text.clone()),
        (None, other) => Some(other.to_string()),
    }
}

fn check_name(path: &str, name: &str, options: &Options) -> Result<(), ImportError> {
    let why = if name.is_empty() {
        "empty"
    } else if name.contains('/') {
        "it contains '/'"
    } else if name == "." || name == ".." {
        "v2 paths cannot hold it"
    } else if options.skips(name) {
        "a hidden name: give --hidden"
    } else {
        return Ok(());
    };
    Err(ImportError::BadName {
        path: path.to_string(),
        name: name.to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaves(desired: &Desired) -> Vec<(&str, &str)> {
        desired
            .nodes
            .iter()
            .filter_map(|(path, node)| match node {
                DesiredNode::Leaf(text) => Some((path.as_str(), text.as_str())),
                DesiredNode::Dir { .. } => None,
            })
            .collect()
    }

    #[test]
    fn arrays_are_numbered_from_zero_and_objects_are_directories() {
        let desired = import(
            &json!({"event_handlers": ["a", "b"], "keys": {"role": "db"}}),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            desired.nodes,
            vec![
                ("event_handlers".into(), DesiredNode::Dir { array: true }),
                ("event_handlers/0".into(), DesiredNode::Leaf("a".into())),
                ("event_handlers/1".into(), DesiredNode::Leaf("b".into())),
                ("keys".into(), DesiredNode::Dir { array: false }),
                ("keys/role".into(), DesiredNode::Leaf("db".into())),
            ]
        );
    }

    #[test]
    fn json_values_quote_strings_that_look_like_json() {
        let document = json!({"n": 5, "s": "5", "t": "five", "z": null});
        let desired = import(&document, &Options::default().with_values(Values::Json)).unwrap();
        assert_eq!(
            leaves(&desired),
            [("n", "5"), ("s", "\"5\""), ("t", "five"), ("z", "null")]
        );
    }

    #[test]
    fn what_would_not_render_back_is_refused() {
        let options = Options::default().declare("retry_max_attempts", Shape::Int);
        let refused = |document: Value| import(&document, &options).unwrap_err().to_string();
        assert_eq!(
            refused(json!("x")),
            "the document must be a JSON object or array"
        );
        assert_eq!(
            refused(json!({"a": {"0": "x"}})),
            "'a': an object whose keys are all numbers renders as an array; declare it a map or use an array"
        );
        assert_eq!(
            refused(json!({"a/b": "x"})),
            "'': 'a/b' cannot be a key name (it contains '/')"
        );
        assert_eq!(
            refused(json!({"_x": "x"})),
            "'': '_x' cannot be a key name (a hidden name: give --hidden)"
        );
        assert_eq!(
            refused(json!({"retry_max_attempts": "3"})),
            "'retry_max_attempts': expected an integer"
        );
    }
}
