//! foca's configuration: memberlist's LAN profile (`Config::new_lan`), with memberlist's
//! retransmit limit.
//!
//! An item foca disseminates (a membership update, a user event, a query) rides on the
//! next packets that leave, whatever their destination, until it has been sent
//! `max_transmissions` times. memberlist allows `4 × ceil(log10(n + 1))` sends (4 up to 9
//! members); foca's `new_lan` rounds `4 × log10(n + 1)` down instead: 2 for three
//! members. Two sends are easily spent on one member (a probe ping and the ack of its
//! probe leave within the same 200 ms gossip interval), and the member that receives the
//! item spends its own two the same way: the third member never sees it. A user event
//! sent right after a query was lost that way, and queries went unanswered by one member.

use foca::Config;
use std::num::{NonZeroU8, NonZeroU32};

/// memberlist's `RetransmitMult` for LAN clusters.
const RETRANSMIT_MULT: u32 = 4;

/// The config for a cluster of `alive_members` (this one included); its suspicion timeout
/// and retransmissions grow with the cluster, so the node resizes it as members come and go.
pub(super) fn swim_config(alive_members: usize) -> Config {
    let size = u32::try_from(alive_members).unwrap_or(u32::MAX);
    let mut config = Config::new_lan(NonZeroU32::new(size).unwrap_or(NonZeroU32::MIN));
    config.max_transmissions = retransmit_limit(size);
    config
}

/// memberlist's `retransmitLimit`: `RETRANSMIT_MULT × ceil(log10(n + 1))`, where
/// `ceil(log10(n + 1))` is the number of decimal digits of `n`.
fn retransmit_limit(members: u32) -> NonZeroU8 {
    let scale = members.max(1).ilog10() + 1;
    let limit = u8::try_from(RETRANSMIT_MULT * scale).unwrap_or(u8::MAX);
    NonZeroU8::new(limit).unwrap_or(NonZeroU8::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_follow_memberlist() {
        let limit = |members| swim_config(members).max_transmissions.get();
        // foca's own new_lan: 1 for one or two members, 2 for three
        assert_eq!(limit(1), 4);
        assert_eq!(limit(3), 4);
        assert_eq!(limit(9), 4);
        assert_eq!(limit(10), 8);
        assert_eq!(limit(99), 8);
        assert_eq!(limit(100), 12);
        assert_eq!(limit(0), 4);
    }

    #[test]
    fn the_rest_is_the_lan_profile() {
        let ours = swim_config(3);
        let mut lan = Config::new_lan(NonZeroU32::new(3).unwrap());
        assert_eq!(
            lan.max_transmissions.get(),
            2,
            "foca's own limit for three members"
        );
        lan.max_transmissions = ours.max_transmissions;
        // foca's Config compares only through Debug
        assert_eq!(format!("{ours:?}"), format!("{lan:?}"));
    }
}
