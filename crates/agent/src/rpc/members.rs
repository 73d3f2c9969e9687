//! Member records as Serf's `members` replies carry them, and `members-filtered`'s
//! patterns, anchored at both ends as Serf anchors them.

use musubi_gossip::membership::MemberRecord;
use musubi_serf_rpc::codec::{MemberWire, MembersFilter};
use regex::Regex;
use std::net::IpAddr;

/// Protocol versions Serf 0.8.2 reports (memberlist 1..5 speaking 2; Serf 2..5 speaking 5),
/// so tools that print them show what they show for a Serf agent.
const PROTOCOL_MIN_MAX_CUR: (u8, u8, u8) = (1, 5, 2);
const DELEGATE_MIN_MAX_CUR: (u8, u8, u8) = (2, 5, 5);

pub fn member_wire(record: &MemberRecord) -> MemberWire {
    let addr = match record.id.addr.ip() {
        IpAddr::V4(ip) => ip.octets().to_vec(),
        IpAddr::V6(ip) => ip.octets().to_vec(),
    };
    let (protocol_min, protocol_max, protocol_cur) = PROTOCOL_MIN_MAX_CUR;
    let (delegate_min, delegate_max, delegate_cur) = DELEGATE_MIN_MAX_CUR;
    MemberWire {
        addr,
        delegate_cur,
        delegate_max,
        delegate_min,
        name: record.id.name.clone(),
        port: record.id.addr.port(),
        protocol_cur,
        protocol_max,
        protocol_min,
        status: record.status.as_str().to_string(),
        tags: record.id.tags.clone(),
    }
}

/// `members-filtered`'s patterns, anchored at both ends as Serf anchors them.
pub struct MemberMatcher {
    name: Option<Regex>,
    status: Option<Regex>,
    tags: Vec<(String, Regex)>,
}

impl MemberMatcher {
    pub fn new(filter: &MembersFilter) -> Result<Self, regex::Error> {
        let optional = |pattern: &str| (!pattern.is_empty()).then(|| anchored(pattern)).transpose();
        Ok(MemberMatcher {
            name: optional(&filter.name)?,
            status: optional(&filter.status)?,
            tags: filter
                .tags
                .iter()
                .map(|(tag, pattern)| Ok((tag.clone(), anchored(pattern)?)))
                .collect::<Result<_, regex::Error>>()?,
        })
    }

    pub fn matches(&self, record: &MemberRecord) -> bool {
        let fits = |re: &Option<Regex>, text: &str| re.as_ref().is_none_or(|re| re.is_match(text));
        fits(&self.name, &record.id.name)
            && fits(&self.status, record.status.as_str())
            && self.tags.iter().all(|(tag, re)| {
                record
                    .id
                    .tags
                    .get(tag)
                    .is_some_and(|value| re.is_match(value))
            })
    }
}

fn anchored(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use musubi_gossip::identity::NodeId;
    use musubi_gossip::membership::MemberStatus;

    fn record(name: &str, status: MemberStatus, tags: &[(&str, &str)]) -> MemberRecord {
        MemberRecord {
            id: NodeId {
                name: name.into(),
                addr: "10.0.0.1:7946".parse().unwrap(),
                tags: tags.iter().map(|&(k, v)| (k.into(), v.into())).collect(),
                started_ms: 1,
            },
            status,
        }
    }

    #[test]
    fn filters_are_anchored_and_all_must_match() {
        let filter = MembersFilter {
            tags: [("role".to_string(), "web".to_string())].into(),
            status: "alive|leaving".into(),
            name: "node-.".into(),
        };
        let matcher = MemberMatcher::new(&filter).unwrap();
        assert!(matcher.matches(&record("node-1", MemberStatus::Alive, &[("role", "web")])));
        assert!(!matcher.matches(&record("node-10", MemberStatus::Alive, &[("role", "web")])));
        assert!(!matcher.matches(&record(
            "node-1",
            MemberStatus::Alive,
            &[("role", "webserver")]
        )));
        assert!(!matcher.matches(&record("node-1", MemberStatus::Failed, &[("role", "web")])));
        assert!(!matcher.matches(&record("node-1", MemberStatus::Alive, &[])));
    }

    #[test]
    fn a_bad_pattern_is_refused() {
        let filter = MembersFilter {
            status: "(".into(),
            ..Default::default()
        };
        assert!(MemberMatcher::new(&filter).is_err());
    }

    #[test]
    fn members_carry_raw_address_bytes() {
        let wire = member_wire(&record("a", MemberStatus::Left, &[]));
        assert_eq!(wire.addr, vec![10, 0, 0, 1]);
        assert_eq!((wire.port, wire.status.as_str()), (7946, "left"));
    }
}
