//! import∘render = identity: a random document, imported over a random tree (as the store
//! would apply the plan, one index per write), renders as itself.

use musubi_conf::{Entry, Expect, Options, Plan, Shape, Tree, Values, import, plan, render};
use proptest::prelude::*;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Names that cannot be mistaken for positions or hidden keys.
fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,6}"
}

fn scalar(values: Values) -> BoxedStrategy<Value> {
    let text = "[ -~]{0,8}".prop_map(Value::String);
    match values {
        Values::String => text.boxed(),
        Values::Json => prop_oneof![
            text,
            any::<i64>().prop_map(Value::from),
            any::<bool>().prop_map(Value::Bool),
            Just(Value::Null),
        ]
        .boxed(),
    }
}

/// A document: an object whose containers are never empty (v3 has no empty directories;
/// an undeclared empty array reads back as `{}`).
fn document(values: Values) -> impl Strategy<Value = Value> {
    let leaf = scalar(values);
    let value = leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..5).prop_map(Value::Array),
            prop::collection::btree_map(name(), inner, 1..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    });
    prop::collection::btree_map(name(), value, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

/// The store: flat keys with the indexes v2 would give them.
#[derive(Default)]
struct Store {
    keys: BTreeMap<String, Entry>,
    index: u64,
}

impl Store {
    /// Apply a plan as v2 would, checking each write's expectation.
    fn apply(&mut self, plan: &Plan) {
        for delete in &plan.deletes {
            let below = format!("{}/", delete.path);
            self.keys
                .retain(|path, _| path != &delete.path && !path.starts_with(&below));
            self.index += 1;
        }
        for put in &plan.puts {
            let found = self.keys.get(&put.path).map(|e| e.modified);
            match put.expect {
                Expect::Absent => assert_eq!(found, None, "{}", put.path),
                Expect::Modified(index) => assert_eq!(found, Some(index), "{}", put.path),
            }
            self.index += 1;
            let mut parent = String::new();
            for segment in put
                .path
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .unwrap()
                .1
            {
                parent = if parent.is_empty() {
                    segment.to_string()
                } else {
                    format!("{parent}/{segment}")
                };
                self.keys
                    .entry(parent.clone())
                    .or_insert_with(|| Entry::dir(&parent, self.index));
            }
            let entry = match &put.value {
                Some(value) => Entry::leaf(&put.path, value, self.index),
                None => Entry::dir(&put.path, self.index),
            };
            self.keys.insert(put.path.clone(), entry);
        }
    }

    fn tree(&self) -> Tree {
        Tree::from_entries(self.keys.values().cloned()).unwrap()
    }
}

fn round_trip(document: &Value, before: &Value, options: &Options) -> Result<(), TestCaseError> {
    let mut store = Store::default();
    store.apply(&plan(
        &Tree::empty(),
        &import(before, options).unwrap(),
        options,
        false,
    ));
    let current = store.tree();
    let desired = import(document, options).unwrap();
    store.apply(&plan(&current, &desired, options, true));
    prop_assert_eq!(&render(&store.tree(), options).unwrap(), document);
    // Importing it again changes nothing.
    let again = plan(&store.tree(), &desired, options, true);
    prop_assert!(again.is_empty(), "{:?}", again);
    Ok(())
}

proptest! {
    #[test]
    fn import_then_render_is_identity_for_strings(
        document in document(Values::String),
        before in document(Values::String),
    ) {
        round_trip(&document, &before, &Options::default())?;
    }

    #[test]
    fn import_then_render_is_identity_for_json_values(
        document in document(Values::Json),
        before in document(Values::Json),
    ) {
        round_trip(&document, &before, &Options::default().with_values(Values::Json))?;
    }

    #[test]
    fn import_then_render_is_identity_under_declared_shapes(
        handlers in prop::collection::vec("[ -~]{0,8}", 0..5),
        tags in prop::collection::btree_map("[a-z0-9]{1,4}", "[ -~]{0,8}", 0..4),
        retries in any::<i64>(),
        before in document(Values::String),
    ) {
        let options = Options::default()
            .declare("event_handlers", Shape::List)
            .declare("tags", Shape::Map)
            .declare("retry_max_attempts", Shape::Int);
        let document = serde_json::json!({
            "event_handlers": handlers, "tags": tags, "retry_max_attempts": retries,
        });
        round_trip(&document, &before, &options)?;
    }
}
