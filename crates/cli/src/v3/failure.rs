//! How a v3 command fails, as etcdctl 3.4 does: one line `Error: ...` on stderr and one of
//! its exit codes (`ctlv3/command/error.go`).

use tonic::{Code, Status};

/// A server's error reply, an unreachable cluster, a deadline passed.
pub const EXIT_ERROR: u8 = 1;
/// Some commands (lease timetolive, keep-alive) report their RPC's failure with this one.
pub const EXIT_BAD_CONNECTION: u8 = 2;
/// A `txn` whose input does not parse.
pub const EXIT_INVALID_INPUT: u8 = 3;
/// A flag value etcdctl does not support (`--sort-by`, `--consistency`).
pub const EXIT_BAD_FEATURE: u8 = 4;
/// A watch the server cancelled.
pub const EXIT_INTERRUPTED: u8 = 5;
/// Wrong arguments.
pub const EXIT_BAD_ARGS: u8 = 128;

#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// An exit code whose reasons were printed already.
    pub fn silent(code: u8) -> Failure {
        Failure::new(code, "")
    }

    pub fn bad_args(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_BAD_ARGS, message)
    }

    pub fn other(message: impl Into<String>) -> Failure {
        Failure::new(EXIT_ERROR, message)
    }

    pub fn deadline() -> Failure {
        Failure::other("context deadline exceeded")
    }

    /// A gRPC error as etcd's client shows it: etcd's own errors by their message, any other
    /// in grpc-go's `rpc error: code = ... desc = ...` form.
    pub fn status(status: Status) -> Failure {
        let message = if status.message().starts_with("etcdserver: ") {
            status.message().to_string()
        } else if status.code() == Code::DeadlineExceeded {
            "context deadline exceeded".to_string()
        } else {
            format!(
                "rpc error: code = {} desc = {}",
                go_code_name(status.code()),
                status.message()
            )
        };
        Failure::other(message)
    }

    /// etcdctl's `failed to revoke lease (...)` and the like.
    pub fn context(self, what: &str) -> Failure {
        Failure {
            code: self.code,
            message: format!("{what} ({})", self.message),
        }
    }

    pub fn with_code(self, code: u8) -> Failure {
        Failure { code, ..self }
    }

    pub fn report(&self) {
        if !self.message.is_empty() {
            eprintln!("Error: {}", self.message);
        }
    }
}

/// grpc-go's names of the codes (tonic spells `Canceled` with two Ls).
fn go_code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}
