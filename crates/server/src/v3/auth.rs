//! etcd 3.4's v3 Auth service, and the check every other v3 RPC makes of its caller.

pub mod status;
