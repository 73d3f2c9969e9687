//! `musubi kv` and `musubi bench` against a real server: Debian's etcd 3.4 or `musubi serve`,
//! chosen by `MUSUBI_TEST_TARGET=etcd|musubi` (default musubi). Where Debian's etcdctl is
//! installed, every verb's output is also compared with etcdctl's for the same command.

mod bench;
mod kv;
mod util;
