//! `-w fields`: etcdctl 3.4's `"Name" : value` lines (Go's `%q` for strings, `Println` for
//! numbers and booleans), for the commands whose etcdctl printer has them.

use super::kv::go_quote;
use musubi_proto::etcdserverpb::response_op::Response;
use musubi_proto::etcdserverpb::{
    DeleteRangeResponse, HashKvResponse, Member, PutResponse, RangeResponse, ResponseHeader,
    StatusResponse, TxnResponse,
};
use musubi_proto::mvccpb::KeyValue;

fn bytes(b: &[u8]) -> String {
    go_quote(&String::from_utf8_lossy(b))
}

pub fn header(h: &Option<ResponseHeader>) {
    let h = h.unwrap_or_default();
    println!("\"ClusterID\" : {}", h.cluster_id);
    println!("\"MemberID\" : {}", h.member_id);
    println!("\"Revision\" : {}", h.revision);
    println!("\"RaftTerm\" : {}", h.raft_term);
}

pub fn kv(prefix: &str, kv: &KeyValue) {
    println!("\"{prefix}Key\" : {}", bytes(&kv.key));
    println!("\"{prefix}CreateRevision\" : {}", kv.create_revision);
    println!("\"{prefix}ModRevision\" : {}", kv.mod_revision);
    println!("\"{prefix}Version\" : {}", kv.version);
    println!("\"{prefix}Value\" : {}", bytes(&kv.value));
    println!("\"{prefix}Lease\" : {}", kv.lease);
}

pub fn get(r: &RangeResponse) {
    header(&r.header);
    for item in &r.kvs {
        kv("", item);
    }
    println!("\"More\" : {}", r.more);
    println!("\"Count\" : {}", r.count);
}

pub fn put(r: &PutResponse) {
    header(&r.header);
    if let Some(prev) = &r.prev_kv {
        kv("Prev", prev);
    }
}

pub fn del(r: &DeleteRangeResponse) {
    header(&r.header);
    println!("\"Deleted\" : {}", r.deleted);
    for prev in &r.prev_kvs {
        kv("Prev", prev);
    }
}

pub fn txn(r: &TxnResponse) {
    header(&r.header);
    println!("\"Succeeded\" : {}", r.succeeded);
    for op in &r.responses {
        match &op.response {
            Some(Response::ResponsePut(p)) => put(p),
            Some(Response::ResponseRange(g)) => get(g),
            Some(Response::ResponseDeleteRange(d)) => del(d),
            other => println!("\"Unknown\" : {}", go_quote(&format!("{other:?}"))),
        }
    }
}

/// A lease's ID and TTL after the header (grant, keep-alive, timetolive).
pub fn lease(h: &Option<ResponseHeader>, id: i64, ttl: i64) {
    header(h);
    println!("\"ID\" : {id}");
    println!("\"TTL\" : {ttl}");
}

pub fn members(h: &Option<ResponseHeader>, members: &[Member]) {
    header(h);
    for m in members {
        println!("\"ID\" : {}", m.id);
        println!("\"Name\" : {}", go_quote(&m.name));
        for u in &m.peer_ur_ls {
            println!("\"PeerURL\" : {}", go_quote(u));
        }
        for u in &m.client_ur_ls {
            println!("\"ClientURL\" : {}", go_quote(u));
        }
        println!("\"IsLearner\" : {}", m.is_learner);
        println!();
    }
}

pub fn status(endpoint: &str, s: &StatusResponse) {
    header(&s.header);
    println!("\"Version\" : {}", go_quote(&s.version));
    println!("\"DBSize\" : {}", s.db_size);
    println!("\"Leader\" : {}", s.leader);
    println!("\"IsLearner\" : {}", s.is_learner);
    println!("\"RaftIndex\" : {}", s.raft_index);
    println!("\"RaftTerm\" : {}", s.raft_term);
    println!("\"RaftAppliedIndex\" : {}", s.raft_applied_index);
    // Go's `%v` of a []string.
    println!("\"Errors\" : [{}]", s.errors.join(" "));
    println!("\"Endpoint\" : {}", go_quote(endpoint));
    println!();
}

pub fn hash_kv(endpoint: &str, h: &HashKvResponse) {
    header(&h.header);
    println!("\"Endpoint\" : {}", go_quote(endpoint));
    println!("\"Hash\" : {}", h.hash);
    println!();
}

pub fn health(endpoint: &str, healthy: bool, took: &str, error: &str) {
    println!("\"Endpoint\" : {}", go_quote(endpoint));
    println!("\"Health\" : {healthy}");
    println!("\"Took\" : {took}");
    println!("\"Error\" : {error}");
    println!();
}
