//! v3 auth errors on the wire: etcd's gRPC codes and `etcdserver: ...` messages.

use musubi_store::v3::auth::AuthV3Error;
use tonic::{Code, Status};

/// An auth refusal as etcd's API layer reports it.
pub fn from_auth(e: AuthV3Error) -> Status {
    use AuthV3Error::*;
    let code = match e {
        UserEmpty | RoleEmpty | AuthFailed | InvalidManagement | OldRevision => {
            Code::InvalidArgument
        }
        UserExists | UserNotFound | RoleExists | RoleNotFound | RoleNotGranted
        | PermissionNotGranted | RootUserMissing | RootRoleMissing | NotEnabled => {
            Code::FailedPrecondition
        }
        PermissionDenied => Code::PermissionDenied,
        InvalidToken => Code::Unauthenticated,
    };
    Status::new(code, format!("etcdserver: {e}"))
}

/// How etcd's Maintenance service refuses a caller (Hash, HashKV, Defragment, Snapshot,
/// MoveLeader): the auth store's own error, which etcd does not map, so code Unknown and
/// `auth: ...`; an invalid token is still `Unauthenticated`.
pub fn from_auth_unmapped(e: AuthV3Error) -> Status {
    match e {
        AuthV3Error::InvalidToken => from_auth(e),
        e => Status::new(Code::Unknown, format!("auth: {e}")),
    }
}
