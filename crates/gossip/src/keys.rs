//! The agent's gossip keys: the [`Keyring`] behind every datagram sent and received, the
//! `serf keys` operations on it (each persisted to the `-keyring-file`), and key catch-up.
//!
//! Shared (behind a mutex) by the node task, which seals and opens datagrams, and the
//! internal `_serf_*-key` queries, which change the ring.
//!
//! **Key catch-up** (beyond Serf; serf#579): a member that was down while the others
//! installed a new key, switched to it and removed the old one comes back sealing with a
//! key they no longer use, and in Serf it can never rejoin. Here a member that opens a
//! datagram with a retired key (or a key that is not its primary) answers the sender with
//! a *catch-up* datagram (kind 5) holding its ring, sealed with the key the sender used, so
//! the sender can read it. The sender takes the ring if it lacks that ring's primary (so
//! two members that both hold both keys never flip each other back and forth), rewrites
//! its keyring file, and its next datagrams are sealed with the cluster's primary. Datagrams
//! sealed with a retired key are otherwise dropped: nothing but the catch-up answers them.

use crate::crypto::{KeyError, OpenError, SecretKey};
use crate::keyring::{Keyring, Standing};
use crate::wire;
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// At most one catch-up per member and period: a member sealing with an old key sends
/// many datagrams before it reads the answer.
const CATCH_UP_EVERY: Duration = Duration::from_secs(1);

/// Why a key operation or a catch-up did not change the ring, in Serf's words where Serf
/// has them (`serf keys` prints them). A `Persist` error comes after the ring changed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeysError {
    #[error("No keyring to modify (encryption not enabled)")]
    NothingToModify,
    #[error("Keyring is empty (encryption not enabled)")]
    NothingToList,
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The ring refused the change (the key is not installed, or is the primary).
    #[error("{0}")]
    Refused(&'static str),
    /// The ring changed but its store could not be rewritten.
    #[error("Failed to write keyring file: {0}")]
    Persist(String),
    #[error("a key catch-up reached an agent without encryption")]
    CatchUpUnencrypted,
    #[error("key catch-up ends inside a key")]
    CatchUpTruncated,
    #[error("key catch-up holds no keys")]
    CatchUpEmpty,
}

/// Where the ring is kept between runs (the agent's `-keyring-file`), rewritten after
/// every change.
pub trait RingStore: Send + Sync {
    fn write(&self, ring: &Keyring) -> std::io::Result<()>;
}

/// A datagram that opened: its plaintext, if it is to be handled, and the catch-up
/// datagram (already sealed) to send back to its sender, if it sealed with an old key.
#[derive(Debug)]
pub struct Opened<'a> {
    pub plain: Option<Cow<'a, [u8]>>,
    pub catch_up: Option<Vec<u8>>,
}

pub struct GossipKeys {
    state: Mutex<State>,
    store: Option<Box<dyn RingStore>>,
}

struct State {
    /// None: the agent runs without encryption.
    ring: Option<Keyring>,
    catch_ups_sent: HashMap<SocketAddr, Instant>,
}

impl GossipKeys {
    /// `ring` None: gossip goes in the clear. `store` keeps the ring after each change.
    pub fn new(ring: Option<Keyring>, store: Option<Box<dyn RingStore>>) -> Self {
        GossipKeys {
            state: Mutex::new(State {
                ring,
                catch_ups_sent: HashMap::new(),
            }),
            store,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.lock().ring.is_some()
    }

    /// What goes on the wire for a datagram: sealed with the primary key, or as it is.
    pub fn seal<'a>(&self, datagram: &'a [u8]) -> Cow<'a, [u8]> {
        match &self.lock().ring {
            Some(ring) => Cow::Owned(ring.seal(datagram)),
            None => Cow::Borrowed(datagram),
        }
    }

    /// Open a datagram from `from` with any key of the ring (or, to answer it with a
    /// catch-up only, a retired key).
    pub fn open<'a>(
        &self,
        sealed: &'a [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<Opened<'a>, OpenError> {
        let mut state = self.lock();
        let State {
            ring,
            catch_ups_sent,
        } = &mut *state;
        let Some(ring) = ring else {
            return Ok(Opened {
                plain: Some(Cow::Borrowed(sealed)),
                catch_up: None,
            });
        };
        let (plain, standing) = ring.open(sealed, now)?;
        let (plain, stale_key) = match standing {
            Standing::Primary => (Some(plain), None),
            Standing::Secondary(key) => (Some(plain), Some(key)),
            Standing::Retired(key) => (None, Some(key)),
        };
        let catch_up = stale_key
            .filter(|_| may_catch_up(catch_ups_sent, from, now))
            .map(|key| key.seal(&wire::key_catch_up_datagram(&encode_ring(ring))));
        Ok(Opened {
            plain: plain.map(Cow::Owned),
            catch_up,
        })
    }

    /// A catch-up from another member: take its ring if ours lacks its primary (we cannot
    /// read that member's datagrams). Returns whether our ring changed.
    pub fn catch_up(&self, body: &[u8], now: Instant) -> Result<bool, KeysError> {
        let newer = decode_ring(body)?;
        let mut state = self.lock();
        let Some(ring) = state.ring.as_mut() else {
            return Err(KeysError::CatchUpUnencrypted);
        };
        if ring.keys().contains(newer.primary()) || !ring.replace(newer, now) {
            return Ok(false);
        }
        self.persist(ring)?;
        Ok(true)
    }

    /// `serf keys -install`: add a key for opening datagrams.
    pub fn install(&self, key: &[u8]) -> Result<(), KeysError> {
        let key = SecretKey::new(key)?;
        self.operate(|ring| {
            ring.install(key);
            Ok(())
        })
    }

    /// `serf keys -use`: seal with an installed key from now on.
    pub fn use_key(&self, key: &[u8]) -> Result<(), KeysError> {
        self.operate(|ring| ring.use_key(key).map_err(KeysError::Refused))
    }

    /// `serf keys -remove`: stop opening datagrams with a key (not the primary).
    pub fn remove(&self, key: &[u8], now: Instant) -> Result<(), KeysError> {
        self.operate(|ring| ring.remove(key, now).map_err(KeysError::Refused))
    }

    /// `serf keys -list`: this member's keys, base64, primary first.
    pub fn list(&self) -> Result<Vec<String>, KeysError> {
        match &self.lock().ring {
            Some(ring) => Ok(ring.keys().iter().map(SecretKey::to_base64).collect()),
            None => Err(KeysError::NothingToList),
        }
    }

    /// Apply an operation to the ring, then rewrite the keyring file: after every
    /// operation that succeeds, as Serf does, even one that changed nothing.
    fn operate(
        &self,
        apply: impl FnOnce(&mut Keyring) -> Result<(), KeysError>,
    ) -> Result<(), KeysError> {
        let mut state = self.lock();
        let ring = state.ring.as_mut().ok_or(KeysError::NothingToModify)?;
        apply(ring)?;
        self.persist(ring)
    }

    fn persist(&self, ring: &Keyring) -> Result<(), KeysError> {
        match &self.store {
            Some(store) => store
                .write(ring)
                .map_err(|e| KeysError::Persist(e.to_string())),
            None => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the ring consistent: every change to it
        // is a single assignment or Vec operation.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn may_catch_up(sent: &mut HashMap<SocketAddr, Instant>, to: SocketAddr, now: Instant) -> bool {
    sent.retain(|_, at| now.duration_since(*at) < CATCH_UP_EVERY);
    if sent.contains_key(&to) {
        return false;
    }
    sent.insert(to, now);
    true
}

/// A ring in a catch-up: each key as a length byte and its bytes, the primary first.
fn encode_ring(ring: &Keyring) -> Vec<u8> {
    let mut body = Vec::new();
    for key in ring.keys() {
        let bytes = key.as_bytes();
        body.push(bytes.len() as u8);
        body.extend_from_slice(bytes);
    }
    body
}

fn decode_ring(mut body: &[u8]) -> Result<Keyring, KeysError> {
    let mut keys = Vec::new();
    while let Some((&len, rest)) = body.split_first() {
        let len = usize::from(len);
        if rest.len() < len {
            return Err(KeysError::CatchUpTruncated);
        }
        let (key, rest) = rest.split_at(len);
        keys.push(SecretKey::new(key)?);
        body = rest;
    }
    Keyring::new(keys).ok_or(KeysError::CatchUpEmpty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(encrypt: &str) -> GossipKeys {
        GossipKeys::new(Some(ring(encrypt)), None)
    }

    fn ring(key: &str) -> Keyring {
        Keyring::new(vec![SecretKey::from_base64(key).unwrap()]).unwrap()
    }

    const K1: &str = "gaWY0b8tPQ3BgVQkMnoGT6lKzSCCvVcWWHhRQ/IXBAU=";
    const K2: &str = "Km3HLKBgXit44+GcYJIwS9YHUM9IULd+0MYC7ibK+0c=";

    fn raw(text: &str) -> Vec<u8> {
        musubi_gocompat::base64::decode(text).unwrap()
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:7946".parse().unwrap()
    }

    #[test]
    fn without_a_ring_gossip_goes_in_the_clear_and_key_operations_are_refused() {
        let plain = GossipKeys::new(None, None);
        assert!(!plain.is_enabled());
        assert_eq!(plain.seal(b"\x00abc").as_ref(), b"\x00abc");
        assert_eq!(
            plain.install(&raw(K2)).unwrap_err().to_string(),
            "No keyring to modify (encryption not enabled)"
        );
        assert_eq!(
            plain.list().unwrap_err().to_string(),
            "Keyring is empty (encryption not enabled)"
        );
    }

    #[test]
    fn a_member_behind_a_rotation_is_caught_up() {
        let now = Instant::now();
        let cluster = keys(K1);
        let sleeper = keys(K1);
        cluster.install(&raw(K2)).unwrap();
        cluster.use_key(&raw(K2)).unwrap();
        cluster.remove(&raw(K1), Instant::now()).unwrap();
        assert_eq!(cluster.list().unwrap(), [K2]);

        // the sleeper's datagram opens only with the retired key: not handled, answered
        let late = sleeper.seal(b"\x00ping").into_owned();
        let opened = cluster.open(&late, peer(), now).unwrap();
        assert!(opened.plain.is_none());
        let answer = opened.catch_up.expect("a catch-up for the sleeper");
        // rate-limited per sender
        assert!(cluster.open(&late, peer(), now).unwrap().catch_up.is_none());

        let plain = sleeper.open(&answer, peer(), now).unwrap().plain.unwrap();
        let wire::Datagram::KeyCatchUp(body) = wire::decode(&plain).unwrap() else {
            panic!("not a catch-up");
        };
        assert_eq!(sleeper.catch_up(body, now), Ok(true));
        assert_eq!(sleeper.list().unwrap(), [K2]);
        let now_current = sleeper.seal(b"\x00ping").into_owned();
        let opened = cluster.open(&now_current, peer(), now).unwrap();
        assert_eq!(opened.plain.unwrap().as_ref(), b"\x00ping");
        assert!(opened.catch_up.is_none());
        // a second copy of the answer changes nothing
        assert_eq!(sleeper.catch_up(body, now), Ok(false));
    }

    #[test]
    fn a_member_that_missed_install_and_use_is_caught_up_too() {
        let now = Instant::now();
        let cluster = keys(K1);
        let sleeper = keys(K1);
        cluster.install(&raw(K2)).unwrap();
        cluster.use_key(&raw(K2)).unwrap();
        // K1 still opens at the cluster, so the datagram is handled, and answered
        let late = sleeper.seal(b"\x00ping").into_owned();
        let opened = cluster.open(&late, peer(), now).unwrap();
        assert_eq!(opened.plain.unwrap().as_ref(), b"\x00ping");
        let answer = opened.catch_up.unwrap();
        let plain = sleeper.open(&answer, peer(), now).unwrap().plain.unwrap();
        let wire::Datagram::KeyCatchUp(body) = wire::decode(&plain).unwrap() else {
            panic!("not a catch-up");
        };
        assert_eq!(sleeper.catch_up(body, now), Ok(true));
        assert_eq!(sleeper.list().unwrap(), [K2, K1]);
    }

    #[test]
    fn members_holding_each_others_primary_keep_their_own() {
        let a = keys(K1);
        a.install(&raw(K2)).unwrap();
        let ring_with_k2_primary = {
            let b = keys(K2);
            b.install(&raw(K1)).unwrap();
            encode_ring(b.lock().ring.as_ref().unwrap())
        };
        assert_eq!(a.catch_up(&ring_with_k2_primary, Instant::now()), Ok(false));
        assert_eq!(a.list().unwrap(), [K1, K2]);
    }

    #[test]
    fn malformed_catch_ups_are_refused() {
        let a = keys(K1);
        assert!(a.catch_up(b"", Instant::now()).is_err());
        assert!(a.catch_up(b"\x20abc", Instant::now()).is_err());
        assert!(a.catch_up(b"\x03abc", Instant::now()).is_err());
        assert_eq!(a.list().unwrap(), [K1]);
    }

    #[test]
    fn datagrams_nobody_sealed_with_our_keys_are_refused() {
        let a = keys(K1);
        let stranger = keys(K2);
        let now = Instant::now();
        assert_eq!(
            a.open(&stranger.seal(b"\x00x"), peer(), now).unwrap_err(),
            OpenError::NoKey
        );
        assert_eq!(
            a.open(
                b"\x00a plaintext foca packet, long as a sealed one",
                peer(),
                now
            )
            .unwrap_err(),
            OpenError::UnknownVersion(0)
        );
    }
}
