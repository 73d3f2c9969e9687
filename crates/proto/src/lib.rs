//! etcd 3.4's v3 API, compiled from our own `.proto` files (written from etcd's API
//! reference; names and numbers are the protocol).
//!
//! Every module holds the prost messages and their serde impls, which give etcd's JSON
//! gateway format: proto field names (`prev_kv`, `ID`, `TTL`), 64-bit integers as strings,
//! enums by name, bytes as base64, zero values omitted. With feature `grpc` the service
//! modules (`kv_server`, `kv_client`, ...) are generated too.

// One module per proto package: prost's messages, then pbjson's serde impls for them.
macro_rules! generated {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub mod $name {
            include!(concat!(env!("OUT_DIR"), "/", $file, ".rs"));
            include!(concat!(env!("OUT_DIR"), "/", $file, ".serde.rs"));
        }
    };
}

generated!(
    /// Stored key-value pairs and watch events.
    mvccpb,
    "mvccpb"
);
generated!(
    /// Users, roles and permissions.
    authpb,
    "authpb"
);
generated!(
    /// The KV, Watch, Lease, Cluster, Maintenance and Auth services.
    etcdserverpb,
    "etcdserverpb"
);
generated!(
    /// The Lock service.
    v3lockpb,
    "v3lockpb"
);
generated!(
    /// The Election service.
    v3electionpb,
    "v3electionpb"
);

#[cfg(feature = "grpc")]
pub mod codec;
mod keys;
pub use keys::prefix_end;
