//! `serf keys` cluster-wide: the RPC commands `install-key`, `use-key`, `remove-key` and
//! `list-keys` ask every member through Serf's internal queries (`_serf_install-key`, ...),
//! each member applies the operation to its own ring and answers, and the answers are
//! tallied into the reply Serf's CLI prints: a message per member that failed, the keys
//! with how many members hold each, and the counts that decide its exit code.
//!
//! A query's payload is `{Key: bin}` (none for a listing); an answer is
//! `{Keys: [base64], Message, Result}`, both msgpack maps.

use crate::crypto::KeyError;
use crate::keys::{GossipKeys, KeysError};
use crate::query::{InternalQueries, QueryParams};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tracing::{error, info};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOperation {
    Install,
    Use,
    Remove,
    List,
}

impl KeyOperation {
    const ALL: [KeyOperation; 4] = [Self::Install, Self::Use, Self::Remove, Self::List];

    /// The operation an RPC command asks for.
    pub fn of_command(command: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.command() == command)
    }

    /// The RPC command, which is also the query's name after `_serf_`.
    pub fn command(self) -> &'static str {
        match self {
            Self::Install => "install-key",
            Self::Use => "use-key",
            Self::Remove => "remove-key",
            Self::List => "list-keys",
        }
    }

    fn query_name(self) -> String {
        format!("{}{}", crate::query::INTERNAL_PREFIX, self.command())
    }

    /// The query that asks every member to apply the operation; `key` is base64, unused
    /// for a listing. The error is Go's base64 error, as Serf replies it.
    pub fn query(self, key: &str) -> Result<QueryParams, KeyError> {
        let payload = match self {
            KeyOperation::List => Vec::new(),
            _ => {
                let key = musubi_gocompat::base64::decode(key)
                    .map_err(|e| KeyError::Base64(e.to_string()))?;
                encode(&KeyRequest { key })
            }
        };
        Ok(QueryParams {
            name: self.query_name(),
            payload,
            ..QueryParams::default()
        })
    }

    /// What Serf logs when a member fails the operation.
    fn failure(self) -> &'static str {
        match self {
            Self::Install => "Failed to install key",
            Self::Use => "Failed to change primary key",
            Self::Remove => "Failed to remove key",
            Self::List => "Failed to list keys",
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct KeyRequest {
    #[serde(with = "serde_bytes")]
    key: Vec<u8>,
}

/// One member's answer.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MemberAnswer {
    keys: Vec<String>,
    message: String,
    result: bool,
}

/// Answer the key queries of every member (this one's included) from `keys`.
pub fn register(queries: &mut InternalQueries, keys: Arc<GossipKeys>) {
    for op in KeyOperation::ALL {
        let keys = keys.clone();
        queries.register(
            &op.query_name(),
            Box::new(move |payload, now| Some(encode(&answer(&keys, op, payload, now)))),
        );
    }
}

fn answer(keys: &GossipKeys, op: KeyOperation, payload: &[u8], now: Instant) -> MemberAnswer {
    info!("Received {} query", op.command());
    let outcome = match op {
        KeyOperation::List => keys.list().map_err(|e| e.to_string()),
        _ => rmp_serde::from_slice::<KeyRequest>(payload)
            .map_err(|e| format!("Failed to decode key request: {e}"))
            .and_then(|request| {
                match op {
                    KeyOperation::Install => keys.install(&request.key),
                    KeyOperation::Use => keys.use_key(&request.key),
                    _ => keys.remove(&request.key, now),
                }
                .map_err(|e: KeysError| e.to_string())
            })
            .map(|()| Vec::new()),
    };
    match outcome {
        Ok(keys) => MemberAnswer {
            keys,
            message: String::new(),
            result: true,
        },
        Err(message) => {
            error!("{}: {message}", op.failure());
            MemberAnswer {
                keys: Vec::new(),
                message,
                result: false,
            }
        }
    }
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("key messages always encode")
}

/// The answers so far, in the shape of Serf's RPC reply (`Keys` is nil except for a
/// listing).
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyTally {
    pub keys: Option<BTreeMap<String, i32>>,
    /// Why each member that failed did.
    pub messages: BTreeMap<String, String>,
    pub num_err: i32,
    pub num_nodes: i32,
    pub num_resp: i32,
}

impl KeyTally {
    pub fn new(op: KeyOperation, members: usize) -> Self {
        KeyTally {
            keys: (op == KeyOperation::List).then(BTreeMap::new),
            num_nodes: i32::try_from(members).unwrap_or(i32::MAX),
            ..KeyTally::default()
        }
    }

    /// One member's answer (a query response's payload).
    pub fn add(&mut self, from: String, payload: &[u8]) {
        self.num_resp += 1;
        let answer = match rmp_serde::from_slice::<MemberAnswer>(payload) {
            Ok(answer) => answer,
            Err(e) => MemberAnswer {
                message: format!("Failed to decode key response: {e}"),
                ..MemberAnswer::default()
            },
        };
        if !answer.result {
            self.num_err += 1;
            self.messages.insert(from, answer.message);
            return;
        }
        if let Some(counts) = &mut self.keys {
            for key in answer.keys {
                *counts.entry(key).or_default() += 1;
            }
        }
    }

    /// Serf's verdict: any member failing, then any member silent.
    pub fn error(&self) -> String {
        if self.num_err != 0 {
            format!("{}/{} nodes reported failure", self.num_err, self.num_nodes)
        } else if self.num_resp != self.num_nodes {
            format!(
                "{}/{} nodes reported success",
                self.num_resp, self.num_nodes
            )
        } else {
            String::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretKey;
    use crate::keyring::Keyring;

    const K1: &str = "gaWY0b8tPQ3BgVQkMnoGT6lKzSCCvVcWWHhRQ/IXBAU=";
    const K2: &str = "Km3HLKBgXit44+GcYJIwS9YHUM9IULd+0MYC7ibK+0c=";
    const K3: &str = "kdBhiHF8f0PdghUnk62pFz1Nw3ph0l3O9n+TPkiHgsA=";

    fn keys(key: &str) -> GossipKeys {
        let ring = Keyring::new(vec![SecretKey::from_base64(key).unwrap()]);
        GossipKeys::new(ring, None)
    }

    fn answer(keys: &GossipKeys, op: KeyOperation, payload: &[u8]) -> MemberAnswer {
        super::answer(keys, op, payload, Instant::now())
    }

    fn request(key: &str) -> Vec<u8> {
        encode(&KeyRequest {
            key: musubi_gocompat::base64::decode(key).unwrap(),
        })
    }

    #[test]
    fn members_answer_with_serfs_results() {
        let keys = keys(K1);
        let ok = answer(&keys, KeyOperation::Install, &request(K2));
        assert_eq!(
            ok,
            MemberAnswer {
                result: true,
                ..MemberAnswer::default()
            }
        );
        let refused = answer(&keys, KeyOperation::Remove, &request(K1));
        assert_eq!(refused.message, "Removing the primary key is not allowed");
        assert!(!refused.result);
        let listed = answer(&keys, KeyOperation::List, b"");
        assert_eq!(listed.keys, [K1, K2]);
        let garbage = answer(&keys, KeyOperation::Use, b"\xc1");
        assert!(garbage.message.starts_with("Failed to decode key request"));
    }

    #[test]
    fn the_tally_is_serfs_reply() {
        let keys = keys(K1);
        let listed = encode(&answer(&keys, KeyOperation::List, b""));
        let mut tally = KeyTally::new(KeyOperation::List, 3);
        tally.add("a".into(), &listed);
        tally.add("b".into(), &listed);
        assert_eq!(tally.error(), "2/3 nodes reported success");
        tally.add("c".into(), b"not msgpack");
        assert_eq!(tally.error(), "1/3 nodes reported failure");
        assert_eq!(tally.keys, Some(BTreeMap::from([(K1.to_string(), 2)])));
        assert!(tally.messages["c"].starts_with("Failed to decode key response"));

        // the bytes Debian's serf sent for `serf keys -list` on three members
        let mut all = KeyTally::new(KeyOperation::List, 3);
        for node in ["n1", "n2", "n3"] {
            all.add(node.into(), &listed);
        }
        let mut expected = b"\x85\xa4Keys\x81\xd9\x2c".to_vec();
        expected.extend_from_slice(K1.as_bytes());
        expected.extend_from_slice(
            b"\x03\xa8Messages\x80\xa6NumErr\x00\xa8NumNodes\x03\xa7NumResp\x03",
        );
        assert_eq!(all.error(), "");
        assert_eq!(encode(&all), expected);
        // and for a refused `-use`: Keys nil, a message per member
        let mut refused = KeyTally::new(KeyOperation::Use, 1);
        refused.add(
            "n1".into(),
            &encode(&answer(&keys, KeyOperation::Use, &request(K3))),
        );
        let mut expected = b"\x85\xa4Keys\xc0\xa8Messages\x81\xa2n1\xd9\x23".to_vec();
        expected.extend_from_slice(b"Requested key is not in the keyring");
        expected.extend_from_slice(b"\xa6NumErr\x01\xa8NumNodes\x01\xa7NumResp\x01");
        assert_eq!(encode(&refused), expected);
        assert_eq!(refused.error(), "1/1 nodes reported failure");
    }

    #[test]
    fn commands_map_to_serfs_query_names() {
        assert_eq!(KeyOperation::of_command("use-key"), Some(KeyOperation::Use));
        assert_eq!(KeyOperation::of_command("keys"), None);
        assert_eq!(KeyOperation::List.query_name(), "_serf_list-keys");
    }
}
