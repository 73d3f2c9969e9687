//! How a tree is read as a document: the declared shapes (a schema such as Serf's, and
//! `--array PATH`), how leaves are typed, and whether hidden names count.

use std::collections::BTreeMap;

/// The shape declared for a path (relative to the prefix, `/`-separated).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// A string, whatever it looks like (Serf's `node_name` "123" stays a string).
    Text,
    /// An integer (`retry_max_attempts`).
    Int,
    /// `true` or `false`.
    Bool,
    /// An array: a directory of elements (`event_handlers`).
    List,
    /// An object, even when its keys are numbers (`tags`).
    Map,
}

impl Shape {
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Shape::Text => "a string",
            Shape::Int => "an integer",
            Shape::Bool => "true or false",
            Shape::List => "an array",
            Shape::Map => "an object",
        }
    }
}

/// How undeclared leaves are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Values {
    /// Every value is a string.
    #[default]
    String,
    /// A value that is a whole JSON literal (`8080`, `true`, `null`, `[1,2]`, `"x"`) is
    /// that JSON; anything else is a string.
    Json,
}

/// Rendering and import options; the same options must be given to both for one to invert
/// the other.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    shapes: BTreeMap<String, Shape>,
    pub values: Values,
    /// Include names that begin with `_` (v2 hides them from listings; musubi keeps its
    /// own keys under `/_musubi`).
    pub hidden: bool,
}

impl Options {
    /// Declare the shape at `path` (later declarations win).
    pub fn declare(mut self, path: &str, shape: Shape) -> Options {
        self.shapes
            .insert(path.trim_matches('/').to_string(), shape);
        self
    }

    /// Declare every `(path, shape)` of a schema.
    pub fn schema<'a>(self, fields: impl IntoIterator<Item = (&'a str, Shape)>) -> Options {
        fields
            .into_iter()
            .fold(self, |options, (path, shape)| options.declare(path, shape))
    }

    pub fn with_values(mut self, values: Values) -> Options {
        self.values = values;
        self
    }

    pub fn with_hidden(mut self, hidden: bool) -> Options {
        self.hidden = hidden;
        self
    }

    pub(crate) fn shape(&self, path: &str) -> Option<Shape> {
        self.shapes.get(path).copied()
    }

    /// Whether a name is skipped: hidden names unless `hidden`.
    pub(crate) fn skips(&self, name: &str) -> bool {
        !self.hidden && name.starts_with('_')
    }
}
