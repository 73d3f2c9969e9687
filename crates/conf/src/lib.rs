//! The pure core of `musubi conf` (docs/conf.md): a tree of keys read from the store at one
//! index becomes one JSON document, and a JSON document becomes the keys to write. It owns
//! no socket, no file and no clock, so `musubi conf` and the agent's `-config-store` render
//! the same tree to the same bytes.
//!
//! Promises:
//! - **Deterministic bytes.** Objects list their keys sorted; arrays keep the order the
//!   store gives their elements (numeric names, else creation order); the document is
//!   written with a 2-space indent and one trailing newline, and hashed over exactly those
//!   bytes ([`Document`]).
//! - **An inverse.** For every document [`import`] accepts, rendering what it writes gives
//!   the document back (a property test checks it on random documents).
//! - **No half answers.** A tree that breaks the schema is an error, never a guess.
//!
//! The driving loop, as `musubi conf render` runs it:
//! 1. read the prefix at one index (v2: one recursive GET; v3: one prefix Range), and turn
//!    each key into an [`Entry`] (its path below the prefix, value or directory flag, and
//!    creation and modification indexes);
//! 2. [`Tree::from_entries`] builds the tree;
//! 3. [`render`] gives the [`serde_json::Value`], [`Document::new`] its bytes and sha256.
//!
//! And `musubi conf import`: [`import`] gives the [`Desired`] keys of a document, [`plan`]
//! compares them with the tree read now and lists the writes and deletes.
//!
//! ```
//! use musubi_conf::{Entry, Options, Shape, Tree, render, Document};
//! let entries = vec![
//!     Entry::leaf("node_name", "manager", 3),
//!     Entry::leaf("bind", "192.168.39.3", 4),
//!     Entry::dir("keys", 7),
//!     Entry::leaf("keys/role", "develop", 8),
//!     Entry::dir("event_handlers", 12),
//!     Entry::leaf("event_handlers/00000000000000000013", "test2", 13),
//!     Entry::leaf("event_handlers/00000000000000000014", "test2", 14),
//! ];
//! let tree = Tree::from_entries(entries).unwrap();
//! let options = Options::default().declare("event_handlers", Shape::List);
//! let document = Document::new(render(&tree, &options).unwrap());
//! assert_eq!(
//!     document.value,
//!     serde_json::json!({"bind": "192.168.39.3", "event_handlers": ["test2", "test2"],
//!                        "keys": {"role": "develop"}, "node_name": "manager"})
//! );
//! assert_eq!(document.sha256.len(), 64);
//! ```

mod document;
mod error;
mod import;
mod options;
mod plan;
mod render;
mod tree;

pub use document::Document;
pub use error::{ImportError, RenderError, TreeError};
pub use import::{Desired, DesiredNode, import};
pub use options::{Options, Shape, Values};
pub use plan::{Delete, Expect, Plan, Put, plan};
pub use render::render;
pub use tree::{Entry, Tree, is_decimal};
