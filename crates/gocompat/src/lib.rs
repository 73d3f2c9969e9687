//! Go's standard library, where etcd's and Serf's users see its exact behaviour: the
//! error messages and offsets their clients print and match. Written once, used by the
//! agent (Serf's keys and durations) and the server (etcd's v2 form errors and JSON gateway).

pub mod base64;
pub mod duration;
pub mod strconv;
