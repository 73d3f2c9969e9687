//! What the core refuses. Nothing here has touched the store: every error is found before a
//! write is planned.

/// The keys read cannot form a tree.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A key below the prefix has an empty segment (`a//b`, a trailing `/`): v3 allows it,
    /// no document can name it.
    #[error("key '{0}' has an empty path segment")]
    BadPath(String),
    /// A name is a value and a directory at once (v3 keys `a` and `a/b`).
    #[error("key '{0}' is both a value and a directory")]
    ValueAndDirectory(String),
}

/// The tree breaks the schema (`--schema`, `--array`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A leaf the schema types (int, bool, list, map) holds something else.
    #[error("key '{path}': expected {expected}, found '{value}'")]
    Type {
        path: String,
        expected: &'static str,
        value: String,
    },
    /// A directory where the schema wants a single value.
    #[error("key '{path}': expected {expected}, found a directory")]
    Directory {
        path: String,
        expected: &'static str,
    },
}

/// The document cannot be written as keys that render back to it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The document is not an object (or an array) at its top.
    #[error("the document must be a JSON object or array")]
    NotAContainer,
    /// An object key cannot be a key name.
    #[error("'{path}': '{name}' cannot be a key name ({why})")]
    BadName {
        path: String,
        name: String,
        why: &'static str,
    },
    /// An object whose keys are all decimal numbers would render as an array.
    #[error(
        "'{path}': an object whose keys are all numbers renders as an array; declare it a map or use an array"
    )]
    NumberedObject { path: String },
    /// A value of the wrong type where the schema declares one.
    #[error("'{path}': expected {expected}")]
    Type {
        path: String,
        expected: &'static str,
    },
}
