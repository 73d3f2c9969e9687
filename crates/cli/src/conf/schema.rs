//! `--schema serf`: the shapes of Serf's config keys, from the agent's own table of them
//! (the one its config-file decoder checks), so the two never disagree.

use musubi_agent::config_layer::{CONFIG_KEYS, KeyType};
use musubi_conf::Shape;

pub fn serf() -> impl Iterator<Item = (&'static str, Shape)> {
    CONFIG_KEYS.iter().map(|(key, kind)| {
        let shape = match kind {
            KeyType::Text | KeyType::Duration => Shape::Text,
            KeyType::Int => Shape::Int,
            KeyType::Bool => Shape::Bool,
            KeyType::TextList => Shape::List,
            KeyType::TextMap => Shape::Map,
        };
        (*key, shape)
    })
}
