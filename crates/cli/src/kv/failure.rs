//! Why a kv command failed, how etcdctl words it, and its exit code.

use musubi_client::Error;

/// etcdctl's exit codes (`ctlv2/command/error.go`).
const EXIT_BAD_ARGS: u8 = 1;
const EXIT_BAD_CONNECTION: u8 = 2;
const EXIT_SERVER_ERROR: u8 = 4;

pub enum Failure {
    /// Missing or unusable arguments; nothing was sent.
    BadArgs(String),
    /// `get` of a directory.
    IsDirectory(String),
    /// No endpoint could be connected to while syncing the member list.
    Connection(Error),
    /// The request failed: an etcd error, or no endpoint answered it.
    Server(Error),
    /// `--total-timeout` passed before the answer.
    DeadlineExceeded,
    /// exec-watch could not start its command.
    Exec(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::BadArgs(_) | Failure::IsDirectory(_) | Failure::Exec(_) => EXIT_BAD_ARGS,
            Failure::Connection(_) => EXIT_BAD_CONNECTION,
            Failure::Server(_) | Failure::DeadlineExceeded => EXIT_SERVER_ERROR,
        }
    }

    /// Print to stderr exactly as etcdctl does (`handleError`: `Error: ` plus Println's space).
    pub fn report(&self) {
        match self {
            Failure::BadArgs(msg) => eprintln!("Error:  {msg}"),
            Failure::IsDirectory(key) => eprintln!("{key}: is a directory"),
            Failure::Connection(e) | Failure::Server(e) => {
                eprintln!("Error:  {e}");
                if let Error::Cluster(c) = e {
                    eprintln!("{}", c.detail());
                }
            }
            Failure::DeadlineExceeded => eprintln!("Error:  context deadline exceeded"),
            Failure::Exec(msg) => eprintln!("{msg}"),
        }
    }
}
