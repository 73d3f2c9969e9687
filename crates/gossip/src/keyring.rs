//! The key ring: the keys gossip is encrypted with, as Serf keeps them. The first key is
//! the primary, which seals every datagram; every key in the ring opens them, so a cluster
//! can rotate keys without a partition (install everywhere, use everywhere, remove).
//!
//! Beyond Serf, the ring remembers keys it removed ("retired" keys) for a day, for opening
//! only: a member that was down during a rotation still seals with an old key, and a
//! datagram that opens only with a retired key tells us so (see `keys.rs`, key catch-up).

use crate::crypto::{OpenError, SecretKey};
use std::time::{Duration, Instant};

/// Serf's answers to `serf keys`, which the CLI prints per node.
pub const NOT_INSTALLED: &str = "Requested key is not in the keyring";
pub const REMOVING_PRIMARY: &str = "Removing the primary key is not allowed";

/// How long a removed key still opens datagrams, to hear a member that slept through the
/// rotation: Serf's reconnect timeout, after which a failed member is forgotten anyway.
pub const RETIRED_FOR: Duration = Duration::from_secs(24 * 60 * 60);
/// Each retired key costs a decryption attempt on every datagram no current key opens.
const MAX_RETIRED: usize = 8;

/// Which key of the ring opened a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    Primary,
    /// In the ring, not the primary: the sender has not switched to our primary.
    Secondary(SecretKey),
    /// Removed from the ring: the sender missed a rotation.
    Retired(SecretKey),
}

#[derive(Debug, Clone)]
pub struct Keyring {
    /// Never empty; the primary first.
    keys: Vec<SecretKey>,
    /// Oldest first.
    retired: Vec<(SecretKey, Instant)>,
}

impl Keyring {
    /// A ring from keys in order, the first as primary; repeated keys count once.
    pub fn new(keys: Vec<SecretKey>) -> Option<Self> {
        let mut ring = Keyring {
            keys: Vec::with_capacity(keys.len()),
            retired: Vec::new(),
        };
        for key in keys {
            if !ring.keys.contains(&key) {
                ring.keys.push(key);
            }
        }
        (!ring.keys.is_empty()).then_some(ring)
    }

    pub fn primary(&self) -> &SecretKey {
        &self.keys[0]
    }

    /// Primary first.
    pub fn keys(&self) -> &[SecretKey] {
        &self.keys
    }

    /// Add a key for opening (not the primary yet); installing it again changes nothing.
    pub fn install(&mut self, key: SecretKey) {
        if !self.keys.contains(&key) {
            self.retired.retain(|(old, _)| *old != key);
            self.keys.push(key);
        }
    }

    /// Make an installed key the primary.
    pub fn use_key(&mut self, key: &[u8]) -> Result<(), &'static str> {
        let at = self.position(key).ok_or(NOT_INSTALLED)?;
        let chosen = self.keys.remove(at);
        self.keys.insert(0, chosen);
        Ok(())
    }

    /// Drop a key (not the primary); a key that is not installed is already gone, as
    /// Serf answers.
    pub fn remove(&mut self, key: &[u8], now: Instant) -> Result<(), &'static str> {
        match self.position(key) {
            Some(0) => Err(REMOVING_PRIMARY),
            Some(at) => {
                let removed = self.keys.remove(at);
                self.retire(removed, now);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Take another member's ring as ours (key catch-up); keys we had that it lacks are
    /// retired. Returns whether the ring changed.
    pub fn replace(&mut self, newer: Keyring, now: Instant) -> bool {
        if newer.keys == self.keys {
            return false;
        }
        let dropped: Vec<SecretKey> = self
            .keys
            .iter()
            .filter(|key| !newer.keys.contains(key))
            .cloned()
            .collect();
        self.keys = newer.keys;
        let current = self.keys.clone();
        self.retired.retain(|(old, _)| !current.contains(old));
        for key in dropped {
            self.retire(key, now);
        }
        true
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        self.primary().seal(plain)
    }

    /// Try every key of the ring, then the retired ones still within [`RETIRED_FOR`].
    pub fn open(&self, sealed: &[u8], now: Instant) -> Result<(Vec<u8>, Standing), OpenError> {
        for (at, key) in self.keys.iter().enumerate() {
            match key.open(sealed) {
                Ok(plain) if at == 0 => return Ok((plain, Standing::Primary)),
                Ok(plain) => return Ok((plain, Standing::Secondary(key.clone()))),
                // the framing is wrong for every key alike
                Err(e @ (OpenError::TooShort(_) | OpenError::UnknownVersion(_))) => return Err(e),
                Err(OpenError::NoKey) => {}
            }
        }
        self.retired
            .iter()
            .filter(|(_, since)| now.duration_since(*since) < RETIRED_FOR)
            .find_map(|(key, _)| {
                key.open(sealed)
                    .ok()
                    .map(|plain| (plain, Standing::Retired(key.clone())))
            })
            .ok_or(OpenError::NoKey)
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.keys.iter().position(|k| k.as_bytes() == key)
    }

    fn retire(&mut self, key: SecretKey, now: Instant) {
        self.retired
            .retain(|(old, since)| *old != key && now.duration_since(*since) < RETIRED_FOR);
        self.retired.push((key, now));
        if self.retired.len() > MAX_RETIRED {
            self.retired.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> SecretKey {
        SecretKey::new(&[byte; 16]).unwrap()
    }

    fn ring(bytes: &[u8]) -> Keyring {
        Keyring::new(bytes.iter().map(|&b| key(b)).collect()).unwrap()
    }

    fn order(ring: &Keyring) -> Vec<u8> {
        ring.keys().iter().map(|k| k.as_bytes()[0]).collect()
    }

    #[test]
    fn install_use_remove_follow_serf() {
        let now = Instant::now();
        let mut ring = ring(&[1]);
        ring.install(key(2));
        ring.install(key(2));
        assert_eq!(order(&ring), [1, 2]);
        assert_eq!(ring.use_key(&[3; 16]), Err(NOT_INSTALLED));
        assert_eq!(ring.use_key(&[2; 16]), Ok(()));
        assert_eq!(order(&ring), [2, 1]);
        assert_eq!(ring.remove(&[2; 16], now), Err(REMOVING_PRIMARY));
        assert_eq!(
            ring.remove(&[9; 16], now),
            Ok(()),
            "absent keys are gone already"
        );
        assert_eq!(order(&ring), [2, 1]);
        assert_eq!(ring.remove(&[1; 16], now), Ok(()));
        assert_eq!(order(&ring), [2]);
        assert!(Keyring::new(Vec::new()).is_none());
        assert_eq!(order(&self::ring(&[1, 2, 1])), [1, 2]);
    }

    #[test]
    fn the_primary_seals_and_every_key_opens() {
        let now = Instant::now();
        let old = ring(&[1]);
        let mut new = ring(&[1]);
        new.install(key(2));
        let sealed_by_old = old.seal(b"x");
        assert_eq!(
            new.open(&sealed_by_old, now).unwrap(),
            (b"x".to_vec(), Standing::Primary)
        );
        new.use_key(&[2; 16]).unwrap();
        assert_eq!(
            new.open(&sealed_by_old, now).unwrap().1,
            Standing::Secondary(key(1))
        );
        assert_eq!(old.open(&new.seal(b"y"), now), Err(OpenError::NoKey));
    }

    #[test]
    fn removed_keys_open_for_a_day_and_only_as_retired() {
        let now = Instant::now();
        let mut ring = ring(&[1, 2]);
        ring.use_key(&[2; 16]).unwrap();
        ring.remove(&[1; 16], now).unwrap();
        let sealed = key(1).seal(b"late");
        assert_eq!(
            ring.open(&sealed, now).unwrap(),
            (b"late".to_vec(), Standing::Retired(key(1)))
        );
        assert_eq!(ring.open(&sealed, now + RETIRED_FOR), Err(OpenError::NoKey));
        ring.install(key(1));
        assert_eq!(
            ring.open(&sealed, now).unwrap().1,
            Standing::Secondary(key(1))
        );
    }

    #[test]
    fn replacing_retires_what_the_newer_ring_dropped() {
        let now = Instant::now();
        let mut ring = ring(&[1]);
        assert!(ring.replace(self::ring(&[3, 2]), now));
        assert_eq!(order(&ring), [3, 2]);
        assert_eq!(
            ring.open(&key(1).seal(b""), now).unwrap().1,
            Standing::Retired(key(1))
        );
        assert!(!ring.replace(self::ring(&[3, 2]), now));
    }

    #[test]
    fn retired_keys_are_bounded() {
        let now = Instant::now();
        let mut ring = ring(&[0]);
        for byte in 1..=20 {
            ring.install(key(byte));
            ring.remove(&[byte; 16], now).unwrap();
        }
        assert_eq!(ring.retired.len(), MAX_RETIRED);
        assert_eq!(
            ring.open(&key(20).seal(b""), now).unwrap().1,
            Standing::Retired(key(20))
        );
        assert_eq!(ring.open(&key(1).seal(b""), now), Err(OpenError::NoKey));
    }
}
