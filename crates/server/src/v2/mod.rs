//! etcd's v2 HTTP API.

pub mod cluster;
pub mod json;
pub mod keys;
pub mod params;
pub mod reply;
pub mod watch;
