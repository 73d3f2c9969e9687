//! What the built-in tools (`conf`, `files`, `lock`, `elect`, `reconcile`) share: the flags
//! that name the store, the connection they make from them (v3 where the server speaks it,
//! v2 otherwise), and one table of exit codes (docs/tools.md).

mod exit;
mod outcome;
mod store;
mod v3_call;

pub use exit::{ToolError, ToolExit, child};
pub use outcome::{exit, runtime};
pub use store::{OutputFormat, Store, StoreArgs};
pub use v3_call::Call;
