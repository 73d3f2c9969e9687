//! Alarms, as etcd's alarm store keeps them: which member raised which alarm. They are
//! replicated state (raised and cleared through the log, kept in the snapshot), so every
//! member refuses the same writes while one is active.
//!
//! As etcd, a member ID is taken literally (0 is a member ID like any other: python
//! `etcd3`'s `create_alarm()` raises one for member 0), GET of type NONE lists every alarm,
//! and an alarm of any type, NONE included, can be raised.
//!
//! While an alarm is active the state machine refuses writes as etcd's appliers do:
//! NOSPACE (the "capped" applier) refuses Put, a Txn with a put in a branch and
//! LeaseGrant; CORRUPT refuses every KV write, compaction and lease grant or revoke.
//! etcd 3.4 swaps its applier on the latest alarm change, so the order alarms were raised
//! and cleared in decides what it refuses; musubi decides from the alarms active now,
//! CORRUPT before NOSPACE (the order etcd restores them in after a restart).

use crate::v3::{V3Error, V3Write};
use musubi_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, AlarmType, TxnRequest, alarm_request::AlarmAction,
    request_op,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alarms {
    /// (alarm type, member ID) of every active alarm.
    active: BTreeSet<(i32, u64)>,
}

impl Alarms {
    /// The active alarms of type `alarm` (NONE: all), by type then member.
    pub fn get(&self, alarm: i32) -> Vec<AlarmMember> {
        self.active
            .iter()
            .filter(|(t, _)| alarm == AlarmType::None as i32 || *t == alarm)
            .map(|&(alarm, member_id)| AlarmMember { member_id, alarm })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    pub fn is_active(&self, alarm: AlarmType) -> bool {
        self.active.iter().any(|(t, _)| *t == alarm as i32)
    }

    /// Every active alarm, in a canonical order (for hashes).
    pub fn iter(&self) -> impl Iterator<Item = (i32, u64)> + '_ {
        self.active.iter().copied()
    }

    /// GET, ACTIVATE or DEACTIVATE; the response lists what was found, raised (or found
    /// already raised) or cleared, as etcd's does.
    pub(crate) fn apply(&mut self, req: &AlarmRequest) -> AlarmResponse {
        let this = (req.alarm, req.member_id);
        let member = || AlarmMember {
            member_id: req.member_id,
            alarm: req.alarm,
        };
        let alarms = match AlarmAction::try_from(req.action) {
            Ok(AlarmAction::Get) => self.get(req.alarm),
            Ok(AlarmAction::Activate) => {
                self.active.insert(this);
                vec![member()]
            }
            Ok(AlarmAction::Deactivate) if self.active.remove(&this) => vec![member()],
            _ => Vec::new(),
        };
        AlarmResponse {
            header: None,
            alarms,
        }
    }

    /// Whether an active alarm refuses `write` (etcd's corrupt and capped appliers).
    pub fn refuses(&self, write: &V3Write) -> Option<V3Error> {
        if self.is_active(AlarmType::Corrupt) {
            let data = matches!(
                write,
                V3Write::Put(_)
                    | V3Write::DeleteRange(_)
                    | V3Write::Txn(_)
                    | V3Write::Compact(_)
                    | V3Write::LeaseGrant { .. }
                    | V3Write::LeaseRevoke { .. }
            );
            return data.then_some(V3Error::Corrupt);
        }
        if self.is_active(AlarmType::Nospace) {
            return match write {
                V3Write::Put(_) | V3Write::LeaseGrant { .. } => Some(V3Error::NoSpace),
                V3Write::Txn(txn) if puts(txn) => Some(V3Error::NoSpace),
                _ => None,
            };
        }
        None
    }
}

/// Whether a branch of `txn` puts a key: what etcd's capped applier refuses. As etcd's
/// quota, only the Txn's own ops count, not those of Txns nested in it.
pub fn puts(txn: &TxnRequest) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| matches!(op.request, Some(request_op::Request::RequestPut(_))))
}

/// An alarm as etcd's `Status.errors` and `etcdctl alarm list` print it: the protobuf
/// text form, zero fields left out, each field followed by a space
/// (`memberID:10276657743932975437 alarm:NOSPACE `).
pub fn describe(m: &AlarmMember) -> String {
    let mut out = String::new();
    if m.member_id != 0 {
        out.push_str(&format!("memberID:{} ", m.member_id));
    }
    if m.alarm != 0 {
        match AlarmType::try_from(m.alarm) {
            Ok(t) => out.push_str(&format!("alarm:{} ", t.as_str_name())),
            Err(_) => out.push_str(&format!("alarm:{} ", m.alarm)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_proto::etcdserverpb::{PutRequest, RequestOp};

    fn request(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        }
    }

    #[test]
    fn an_alarm_is_raised_listed_and_cleared_per_member_and_type() {
        let mut a = Alarms::default();
        let raised = a.apply(&request(AlarmAction::Activate, 7, AlarmType::Nospace));
        assert_eq!(raised.alarms.len(), 1);
        a.apply(&request(AlarmAction::Activate, 0, AlarmType::Corrupt));
        assert_eq!(
            a.apply(&request(AlarmAction::Get, 99, AlarmType::None))
                .alarms
                .len(),
            2
        );
        assert_eq!(
            a.apply(&request(AlarmAction::Get, 0, AlarmType::Nospace))
                .alarms,
            vec![AlarmMember {
                member_id: 7,
                alarm: AlarmType::Nospace as i32
            }]
        );
        // Member 0 is a member like any other, not "all members".
        let missed = a.apply(&request(AlarmAction::Deactivate, 0, AlarmType::Nospace));
        assert!(missed.alarms.is_empty());
        a.apply(&request(AlarmAction::Deactivate, 7, AlarmType::Nospace));
        assert!(!a.is_active(AlarmType::Nospace));
        assert!(a.is_active(AlarmType::Corrupt));
    }

    #[test]
    fn nospace_refuses_only_what_adds_data() {
        let mut a = Alarms::default();
        a.apply(&request(AlarmAction::Activate, 1, AlarmType::Nospace));
        let put = PutRequest {
            key: b"k".to_vec(),
            ..Default::default()
        };
        assert_eq!(
            a.refuses(&V3Write::Put(put.clone())),
            Some(V3Error::NoSpace)
        );
        assert_eq!(
            a.refuses(&V3Write::LeaseGrant { id: 1, ttl: 5 }),
            Some(V3Error::NoSpace)
        );
        let txn = |ops: Vec<RequestOp>| {
            V3Write::Txn(TxnRequest {
                failure: ops,
                ..Default::default()
            })
        };
        let put_op = RequestOp {
            request: Some(request_op::Request::RequestPut(put)),
        };
        assert_eq!(a.refuses(&txn(vec![put_op])), Some(V3Error::NoSpace));
        assert_eq!(a.refuses(&txn(vec![])), None);
        assert_eq!(
            a.refuses(&V3Write::LeaseRevoke {
                id: 1,
                expired: true
            }),
            None
        );
    }

    #[test]
    fn alarms_live_in_the_snapshot_and_old_snapshots_have_none() {
        use crate::StateMachine;
        use crate::{Request, v3::V3Write};
        let mut sm = StateMachine::new();
        let raise = request(AlarmAction::Activate, 3, AlarmType::Nospace);
        sm.apply(&Request::V3 {
            write: V3Write::Alarm(raise),
            now_ms: 0,
        });
        let bytes = sm.to_snapshot();
        let restored = StateMachine::from_snapshot(&bytes).unwrap();
        assert!(restored.alarms().is_active(AlarmType::Nospace));
        let mut old: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        old.as_object_mut().unwrap().remove("alarms");
        let old = serde_json::to_vec(&old).unwrap();
        assert!(
            StateMachine::from_snapshot(&old)
                .unwrap()
                .alarms()
                .is_empty()
        );
    }

    #[test]
    fn alarms_print_as_etcd_prints_them() {
        let m = AlarmMember {
            member_id: 5,
            alarm: AlarmType::Nospace as i32,
        };
        assert_eq!(describe(&m), "memberID:5 alarm:NOSPACE ");
        assert_eq!(
            describe(&AlarmMember {
                member_id: 5,
                alarm: 0
            }),
            "memberID:5 "
        );
    }
}
