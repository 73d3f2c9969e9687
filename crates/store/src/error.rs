//! etcd v2's error codes and messages. The wire mapping (HTTP status, JSON) lives in the
//! server; here an error is only a code, a cause and the store index it was observed at.

use serde::{Deserialize, Serialize};
use std::fmt;

/// etcd's v2 `errorCode` values, with the message etcd prints for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u16)]
pub enum ErrorCode {
    KeyNotFound = 100,
    TestFailed = 101,
    NotFile = 102,
    NotDir = 104,
    NodeExist = 105,
    RootReadOnly = 107,
    DirNotEmpty = 108,
    Unauthorized = 110,
    PrevValueRequired = 201,
    TtlNan = 202,
    IndexNan = 203,
    InvalidField = 209,
    InvalidForm = 210,
    RefreshValue = 211,
    RefreshTtlRequired = 212,
    RaftInternal = 300,
    LeaderElect = 301,
    EventIndexCleared = 401,
}

impl ErrorCode {
    pub fn code(self) -> u16 {
        self as u16
    }

    /// The `message` field exactly as etcd 3.4 writes it.
    pub fn message(self) -> &'static str {
        match self {
            ErrorCode::KeyNotFound => "Key not found",
            ErrorCode::TestFailed => "Compare failed",
            ErrorCode::NotFile => "Not a file",
            ErrorCode::NotDir => "Not a directory",
            ErrorCode::NodeExist => "Key already exists",
            ErrorCode::RootReadOnly => "Root is read only",
            ErrorCode::DirNotEmpty => "Directory not empty",
            ErrorCode::Unauthorized => "The request requires user authentication",
            ErrorCode::PrevValueRequired => "PrevValue is Required in POST form",
            ErrorCode::TtlNan => "The given TTL in POST form is not a number",
            ErrorCode::IndexNan => "The given index in POST form is not a number",
            ErrorCode::InvalidField => "Invalid field",
            ErrorCode::InvalidForm => "Invalid POST form",
            ErrorCode::RefreshValue => "Value provided on refresh",
            ErrorCode::RefreshTtlRequired => "A TTL must be provided on refresh",
            ErrorCode::RaftInternal => "Raft Internal Error",
            ErrorCode::LeaderElect => "During Leader Election",
            ErrorCode::EventIndexCleared => "The event in requested index is outdated and cleared",
        }
    }
}

/// A v2 error: which code, what caused it, and the store index when it happened.
/// Returning one never changes the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Error {
    pub code: ErrorCode,
    pub cause: String,
    pub index: u64,
}

impl V2Error {
    pub fn new(code: ErrorCode, cause: impl Into<String>, index: u64) -> Self {
        V2Error {
            code,
            cause: cause.into(),
            index,
        }
    }
}

impl fmt::Display for V2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({}) [{}]",
            self.code.code(),
            self.code.message(),
            self.cause,
            self.index
        )
    }
}

impl std::error::Error for V2Error {}
