//! Go's standard library, where etcd's and Serf's users see its exact behaviour: the
//! error messages and offsets their clients print and match, the JSON and quoting their
//! tools print, the paths they clean. Written once, used by the agent (Serf's keys and
//! durations), the server (etcd's v2 form errors, keys and JSON gateway), the client and
//! the CLI, and their command lines (`flag`).

pub mod base64;
pub mod duration;
pub mod flag;
pub mod json;
pub mod path;
pub mod strconv;
