//! An async client for etcd's v2 keys API, as spoken by etcd 3.4 with `--enable-v2` and by
//! `musubi serve`.
//!
//! Promises:
//! - requests are built exactly as etcd's Go client (`client/keys.go`) builds them, so the
//!   `--debug` curl lines match `etcdctl`'s byte for byte;
//! - an endpoint that cannot be reached, or that answers 500/503, is skipped for the next one
//!   (the one that last worked is tried first);
//! - every reply keeps its `X-Etcd-Index`, `X-Raft-Index`, `X-Raft-Term` and
//!   `X-Etcd-Cluster-Id` headers.
//!
//! Use:
//! 1. [`Client::new`] with the endpoint URLs, optionally [`Client::with_debug`] and
//!    [`Client::with_timeout`];
//! 2. optionally [`Client::sync`] to replace the endpoints with the cluster's client URLs;
//! 3. [`Client::get`], [`Client::set`] (create, update, compare-and-swap, directories: see
//!    [`SetOptions`]), [`Client::create_in_order`], [`Client::delete`];
//! 4. [`Client::watcher`] for a stream of events, one long poll at a time.
//!
//! ```no_run
//! # async fn demo() -> Result<(), musubi_client::Error> {
//! use musubi_client::{Client, GetOptions, SetOptions, WatchOptions};
//!
//! let client = Client::new(vec!["http://127.0.0.1:2379".into()])?;
//! client.set("/config/a", "1", &SetOptions::create(None)).await?;
//! let got = client.get("/config/a", &GetOptions::default()).await?;
//! assert_eq!(got.node.value, "1");
//! // Everything that happens under /config after this read.
//! let after = WatchOptions { after_index: got.meta.etcd_index, recursive: true };
//! let mut watcher = client.watcher("/config", after);
//! let event = watcher.next().await?;
//! println!("{} {}", event.action, event.node.key);
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod escape;
mod members;
mod request;
mod types;
mod watch;

pub use client::Client;
pub use error::{ClusterError, EndpointError, Error, EtcdError};
pub use members::Member;
pub use request::{DeleteOptions, GetOptions, PrevExist, SetOptions, WatchOptions};
pub use types::{Meta, Node, Response};
pub use watch::Watcher;
