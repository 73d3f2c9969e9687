//! etcd's v2 HTTP API.

pub mod auth;
pub mod auth_json;
pub mod basic_auth;
pub mod cluster;
pub mod json;
pub mod keys;
pub mod members;
pub mod params;
pub mod reply;
pub mod watch;
