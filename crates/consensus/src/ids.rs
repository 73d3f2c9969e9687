//! Member and cluster IDs: stable hashes, so the same flags always yield the same IDs and
//! clients that pin `X-Etcd-Cluster-Id` (python-etcd raises when it changes) see one
//! cluster across restarts.

/// A member's ID from its peer URLs (in any order) and a salt: the cluster token for the
/// members of `--initial-cluster`, the cluster ID and the time for members added later, so
/// a member removed and added again gets a new ID, as in etcd.
pub fn member_id(peer_urls: &[String], salt: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let id = fnv1a(format!("{}|{salt}", urls.join(",")).as_bytes());
    // Zero means "no member" in Raft; never hand it out.
    id.max(1)
}

/// A cluster's ID from the IDs of its first members, in any order.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    fnv1a(&bytes)
}

/// FNV-1a, 64 bit: tiny, stable across Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_depend_on_the_salt() {
        let a = member_id(&["http://127.0.0.1:2380".into()], "t");
        assert_eq!(a, member_id(&["http://127.0.0.1:2380".into()], "t"));
        assert_ne!(a, member_id(&["http://127.0.0.1:2380".into()], "u"));
        assert_eq!(cluster_id(&[1, 2]), cluster_id(&[2, 1]));
    }
}
