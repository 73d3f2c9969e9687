//! Lifeguard's local health multiplier: how much this member doubts itself.
//!
//! A member whose own probes go unanswered, or that has to refute suspicions about
//! itself, is more likely the slow or cut-off one (a loaded CPU, a full socket buffer)
//! than all of its peers at once. So it probes less eagerly and waits longer for answers:
//! every probe interval and probe timeout is multiplied by `score + 1`, which keeps a
//! struggling member from suspecting healthy ones. Serf reports the score as
//! `health_score` in `serf info`.

use std::time::Duration;

/// memberlist's `AwarenessMaxMultiplier`: timeouts grow to at most eight times their
/// configured length, so the score runs from 0 (healthy) to 7.
const MAX_MULTIPLIER: u32 = 8;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Awareness {
    score: u32,
}

impl Awareness {
    /// A probe answered directly: one step healthier.
    pub fn probe_answered(&mut self) {
        self.set(self.score.saturating_sub(1));
    }

    /// A probe answered by nobody, not even through the members asked to relay it; or
    /// a suspicion about ourselves that we had to refute. One step less sure of ourselves.
    pub fn doubt(&mut self) {
        self.set((self.score + 1).min(MAX_MULTIPLIER - 1));
    }

    /// memberlist's `memberlist.health.score` gauge follows each change.
    fn set(&mut self, score: u32) {
        if score != self.score {
            metrics::gauge!("memberlist.health.score").set(score);
        }
        self.score = score;
    }

    pub fn score(self) -> u32 {
        self.score
    }

    /// `timeout`, stretched by how unhealthy we are.
    pub fn scale(self, timeout: Duration) -> Duration {
        timeout * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubts_stretch_timeouts_up_to_eight_times_and_answers_shrink_them_back() {
        let mut awareness = Awareness::default();
        let probe = Duration::from_millis(500);
        assert_eq!(awareness.scale(probe), probe);
        for _ in 0..20 {
            awareness.doubt();
        }
        assert_eq!(awareness.score(), 7);
        assert_eq!(awareness.scale(probe), Duration::from_secs(4));
        awareness.probe_answered();
        assert_eq!(awareness.scale(probe), Duration::from_millis(3500));
        for _ in 0..20 {
            awareness.probe_answered();
        }
        assert_eq!(awareness.score(), 0);
    }
}
