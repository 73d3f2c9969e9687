//! The request messages the gateway reads, field by field in declaration order, as in
//! etcd 3.4's `rpc.proto`, `auth.proto`, `v3lock.proto` and `v3election.proto`.

use super::schema::{Enum, Int, Kind, Msg, f, list, one};

const B: Kind = Kind::Bytes;
const I64: Kind = Kind::Int(Int::I64);
const U64: Kind = Kind::Int(Int::U64);
const BOOL: Kind = Kind::Bool;
const S: Kind = Kind::Str;

pub static EMPTY: Msg = Msg { fields: &[] };

static SORT_ORDER: Enum = Enum {
    go: "etcdserverpb.RangeRequest_SortOrder",
    names: &["NONE", "ASCEND", "DESCEND"],
};
static SORT_TARGET: Enum = Enum {
    go: "etcdserverpb.RangeRequest_SortTarget",
    names: &["KEY", "VERSION", "CREATE", "MOD", "VALUE"],
};
pub static RANGE: Msg = Msg {
    fields: &[
        f("key", B),
        f("range_end", B),
        f("limit", I64),
        f("revision", I64),
        f("sort_order", Kind::Enum(&SORT_ORDER)),
        f("sort_target", Kind::Enum(&SORT_TARGET)),
        f("serializable", BOOL),
        f("keys_only", BOOL),
        f("count_only", BOOL),
        f("min_mod_revision", I64),
        f("max_mod_revision", I64),
        f("min_create_revision", I64),
        f("max_create_revision", I64),
    ],
};
pub static PUT: Msg = Msg {
    fields: &[
        f("key", B),
        f("value", B),
        f("lease", I64),
        f("prev_kv", BOOL),
        f("ignore_value", BOOL),
        f("ignore_lease", BOOL),
    ],
};
pub static DELETE_RANGE: Msg = Msg {
    fields: &[f("key", B), f("range_end", B), f("prev_kv", BOOL)],
};
static REQUEST_OP: Msg = Msg {
    fields: &[
        one("request", "request_range", Kind::Msg(&RANGE)),
        one("request", "request_put", Kind::Msg(&PUT)),
        one("request", "request_delete_range", Kind::Msg(&DELETE_RANGE)),
        one("request", "request_txn", Kind::Msg(&TXN)),
    ],
};
static COMPARE_RESULT: Enum = Enum {
    go: "etcdserverpb.Compare_CompareResult",
    names: &["EQUAL", "GREATER", "LESS", "NOT_EQUAL"],
};
static COMPARE_TARGET: Enum = Enum {
    go: "etcdserverpb.Compare_CompareTarget",
    names: &["VERSION", "CREATE", "MOD", "VALUE", "LEASE"],
};
static COMPARE: Msg = Msg {
    fields: &[
        f("result", Kind::Enum(&COMPARE_RESULT)),
        f("target", Kind::Enum(&COMPARE_TARGET)),
        f("key", B),
        f("range_end", B),
        one("target_union", "version", I64),
        one("target_union", "create_revision", I64),
        one("target_union", "mod_revision", I64),
        one("target_union", "value", B),
        one("target_union", "lease", I64),
    ],
};
pub static TXN: Msg = Msg {
    fields: &[
        list("compare", Kind::Msg(&COMPARE)),
        list("success", Kind::Msg(&REQUEST_OP)),
        list("failure", Kind::Msg(&REQUEST_OP)),
    ],
};
pub static COMPACTION: Msg = Msg {
    fields: &[f("revision", I64), f("physical", BOOL)],
};

static FILTER_TYPE: Enum = Enum {
    go: "etcdserverpb.WatchCreateRequest_FilterType",
    names: &["NOPUT", "NODELETE"],
};
static WATCH_CREATE: Msg = Msg {
    fields: &[
        f("key", B),
        f("range_end", B),
        f("start_revision", I64),
        f("progress_notify", BOOL),
        list("filters", Kind::Enum(&FILTER_TYPE)),
        f("prev_kv", BOOL),
        f("watch_id", I64),
        f("fragment", BOOL),
    ],
};
static WATCH_CANCEL: Msg = Msg {
    fields: &[f("watch_id", I64)],
};
pub static WATCH: Msg = Msg {
    fields: &[
        one("request_union", "create_request", Kind::Msg(&WATCH_CREATE)),
        one("request_union", "cancel_request", Kind::Msg(&WATCH_CANCEL)),
        one("request_union", "progress_request", Kind::Msg(&EMPTY)),
    ],
};

pub static LEASE_GRANT: Msg = Msg {
    fields: &[f("TTL", I64), f("ID", I64)],
};
/// LeaseRevokeRequest and LeaseKeepAliveRequest.
pub static LEASE_ID: Msg = Msg {
    fields: &[f("ID", I64)],
};
pub static LEASE_TIME_TO_LIVE: Msg = Msg {
    fields: &[f("ID", I64), f("keys", BOOL)],
};

// The services musubi does not serve yet: their requests are still read, so that a bad
// one is refused as etcd refuses it.
pub static MEMBER_ADD: Msg = Msg {
    fields: &[list("peerURLs", S), f("isLearner", BOOL)],
};
/// MemberRemoveRequest and MemberPromoteRequest.
pub static MEMBER_ID: Msg = Msg {
    fields: &[f("ID", U64)],
};
pub static MEMBER_UPDATE: Msg = Msg {
    fields: &[f("ID", U64), list("peerURLs", S)],
};
static ALARM_ACTION: Enum = Enum {
    go: "etcdserverpb.AlarmRequest_AlarmAction",
    names: &["GET", "ACTIVATE", "DEACTIVATE"],
};
static ALARM_TYPE: Enum = Enum {
    go: "etcdserverpb.AlarmType",
    names: &["NONE", "NOSPACE", "CORRUPT"],
};
pub static ALARM: Msg = Msg {
    fields: &[
        f("action", Kind::Enum(&ALARM_ACTION)),
        f("memberID", U64),
        f("alarm", Kind::Enum(&ALARM_TYPE)),
    ],
};
pub static MOVE_LEADER: Msg = Msg {
    fields: &[f("targetID", U64)],
};
/// AuthenticateRequest and AuthUserChangePasswordRequest.
pub static NAME_PASSWORD: Msg = Msg {
    fields: &[f("name", S), f("password", S)],
};
static USER_ADD_OPTIONS: Msg = Msg {
    fields: &[f("no_password", BOOL)],
};
pub static USER_ADD: Msg = Msg {
    fields: &[
        f("name", S),
        f("password", S),
        f("options", Kind::Msg(&USER_ADD_OPTIONS)),
    ],
};
/// AuthUserGetRequest, AuthUserDeleteRequest and AuthRoleAddRequest.
pub static NAME: Msg = Msg {
    fields: &[f("name", S)],
};
pub static USER_GRANT_ROLE: Msg = Msg {
    fields: &[f("user", S), f("role", S)],
};
pub static USER_REVOKE_ROLE: Msg = Msg {
    fields: &[f("name", S), f("role", S)],
};
/// AuthRoleGetRequest and AuthRoleDeleteRequest.
pub static ROLE: Msg = Msg {
    fields: &[f("role", S)],
};
static PERMISSION_TYPE: Enum = Enum {
    go: "authpb.Permission_Type",
    names: &["READ", "WRITE", "READWRITE"],
};
static PERMISSION: Msg = Msg {
    fields: &[
        f("permType", Kind::Enum(&PERMISSION_TYPE)),
        f("key", B),
        f("range_end", B),
    ],
};
pub static ROLE_GRANT: Msg = Msg {
    fields: &[f("name", S), f("perm", Kind::Msg(&PERMISSION))],
};
pub static ROLE_REVOKE: Msg = Msg {
    fields: &[f("role", S), f("key", B), f("range_end", B)],
};
pub static LOCK: Msg = Msg {
    fields: &[f("name", B), f("lease", I64)],
};
pub static UNLOCK: Msg = Msg {
    fields: &[f("key", B)],
};
pub static CAMPAIGN: Msg = Msg {
    fields: &[f("name", B), f("lease", I64), f("value", B)],
};
static LEADER_KEY: Msg = Msg {
    fields: &[f("name", B), f("key", B), f("rev", I64), f("lease", I64)],
};
pub static PROCLAIM: Msg = Msg {
    fields: &[f("leader", Kind::Msg(&LEADER_KEY)), f("value", B)],
};
pub static LEADER: Msg = Msg {
    fields: &[f("name", B)],
};
pub static RESIGN: Msg = Msg {
    fields: &[f("leader", Kind::Msg(&LEADER_KEY))],
};
