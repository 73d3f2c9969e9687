//! memberlist's datagram encryption, which Serf's `-encrypt` turns on: a version byte (1),
//! a random 12-byte nonce, then AES-GCM's ciphertext and 16-byte tag, with no additional
//! data. The key's length picks AES-128, AES-192 or AES-256.

use aes_gcm::aead::{Aead, Generate};
use aes_gcm::aes::Aes192;
use aes_gcm::aes::cipher::consts::U12;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, KeyInit, Nonce};
use musubi_gocompat::base64 as go_base64;

/// memberlist's version 1: AES-GCM without padding (version 0 padded, for protocol 1 only).
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// What sealing adds to a datagram.
pub const OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;

/// Why bytes or text are not a key, in Serf's words (which `serf keys` prints).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("key size must be 16, 24 or 32 bytes")]
    Size,
    /// Go's base64 error, as Serf passes it on.
    #[error("{0}")]
    Base64(String),
}

type Aes192Gcm = AesGcm<Aes192, U12>;

#[derive(Clone)]
enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes192(Box<Aes192Gcm>),
    Aes256(Box<Aes256Gcm>),
}

/// One gossip key: its bytes (how the key ring names and compares it) and its cipher.
#[derive(Clone)]
pub struct SecretKey {
    bytes: Vec<u8>,
    cipher: Cipher,
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for SecretKey {}

impl std::fmt::Debug for SecretKey {
    // Never print the key itself into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(AES-{})", self.bytes.len() * 8)
    }
}

/// Why a datagram did not open, in memberlist's words (operators grep Serf's logs).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("Payload is too small to decrypt: {0}")]
    TooShort(usize),
    #[error("Unsupported encryption version {0}")]
    UnknownVersion(u8),
    #[error("No installed keys could decrypt the message")]
    NoKey,
}

impl SecretKey {
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        let invalid = |_| KeyError::Size;
        let cipher = match bytes.len() {
            16 => Cipher::Aes128(Box::new(Aes128Gcm::new_from_slice(bytes).map_err(invalid)?)),
            24 => Cipher::Aes192(Box::new(Aes192Gcm::new_from_slice(bytes).map_err(invalid)?)),
            32 => Cipher::Aes256(Box::new(Aes256Gcm::new_from_slice(bytes).map_err(invalid)?)),
            _ => return Err(KeyError::Size),
        };
        Ok(SecretKey {
            bytes: bytes.to_vec(),
            cipher,
        })
    }

    /// A key as Serf's flags, files and RPC carry it. The error is Serf's: Go's base64
    /// error, or the key size.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = go_base64::decode(text).map_err(|e| KeyError::Base64(e.to_string()))?;
        SecretKey::new(&bytes)
    }

    pub fn to_base64(&self) -> String {
        go_base64::encode(&self.bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Encrypt a datagram under a fresh random nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = Nonce::<U12>::generate();
        let sealed = match &self.cipher {
            Cipher::Aes128(c) => c.encrypt(&nonce, plain),
            Cipher::Aes192(c) => c.encrypt(&nonce, plain),
            Cipher::Aes256(c) => c.encrypt(&nonce, plain),
        }
        // AES-GCM refuses only inputs past 64 GiB; a datagram is at most 64 KiB.
        .expect("a datagram is far below AES-GCM's length limit");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypt a datagram sealed with this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (nonce, ciphertext) = split_sealed(sealed)?;
        let nonce = &Nonce::<U12>::from(*nonce);
        match &self.cipher {
            Cipher::Aes128(c) => c.decrypt(nonce, ciphertext),
            Cipher::Aes192(c) => c.decrypt(nonce, ciphertext),
            Cipher::Aes256(c) => c.decrypt(nonce, ciphertext),
        }
        .map_err(|_| OpenError::NoKey)
    }
}

/// The nonce and the ciphertext (tag included) of a sealed datagram, once its framing is
/// known to be memberlist's version 1.
fn split_sealed(sealed: &[u8]) -> Result<(&[u8; NONCE_LEN], &[u8]), OpenError> {
    if sealed.len() < OVERHEAD {
        return Err(OpenError::TooShort(sealed.len()));
    }
    if sealed[0] != VERSION {
        return Err(OpenError::UnknownVersion(sealed[0]));
    }
    sealed[1..]
        .split_first_chunk()
        .ok_or(OpenError::TooShort(sealed.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP ping that Debian's serf agent (memberlist) sent to a dead member, captured
    /// on loopback with its keyring's key: our reading of the format is memberlist's.
    #[test]
    fn opens_a_datagram_sealed_by_serf() {
        let key = SecretKey::from_base64("Km3HLKBgXit44+GcYJIwS9YHUM9IULd+0MYC7ibK+0c=").unwrap();
        let sealed = go_base64::decode(concat!(
            "AbX5EYS/rh/n6eRTWtojojW9BbWIdePa+jbAQxftY0yoiaAixpeUGsVN24PkdID/KFbixjoh7OgQ",
            "8CeKvgI7VuaipWCbB+olPggjZtHh7RErdq3ijEcdD8g0"
        ))
        .unwrap();
        // memberlist's ping (type 0) as msgpack: {Node, SeqNo, SourceAddr, SourceNode, SourcePort}
        let ping: &[u8] = b"\x00\x85\xa4Node\xa2n3\xa5SeqNo\x7a\xaaSourceAddr\xa4\x7f\x00\x00\x01\
            \xaaSourceNode\xa2n2\xaaSourcePort\xcd\x46\x16";
        assert_eq!(key.open(&sealed).unwrap(), ping);
    }

    #[test]
    fn every_key_size_round_trips_with_fresh_nonces() {
        for len in [16, 24, 32] {
            let key = SecretKey::new(&vec![7u8; len]).unwrap();
            let a = key.seal(b"hello");
            let b = key.seal(b"hello");
            assert_eq!(a.len(), 5 + OVERHEAD);
            assert_eq!(a[0], VERSION);
            assert_ne!(a[1..13], b[1..13], "each datagram gets its own nonce");
            assert_eq!(key.open(&a).unwrap(), b"hello");
            assert_eq!(key.open(&b).unwrap(), b"hello");
        }
    }

    #[test]
    fn tampering_or_the_wrong_key_fails_to_open() {
        let key = SecretKey::new(&[1u8; 32]).unwrap();
        let other = SecretKey::new(&[2u8; 32]).unwrap();
        let sealed = key.seal(b"membership");
        assert_eq!(other.open(&sealed), Err(OpenError::NoKey));
        for at in [1, 12, 13, sealed.len() - 1] {
            let mut bent = sealed.clone();
            bent[at] ^= 0x40;
            assert_eq!(key.open(&bent), Err(OpenError::NoKey), "byte {at} flipped");
        }
        let mut version0 = sealed.clone();
        version0[0] = 0;
        assert_eq!(key.open(&version0), Err(OpenError::UnknownVersion(0)));
        assert_eq!(
            key.open(&sealed[..OVERHEAD - 1]),
            Err(OpenError::TooShort(OVERHEAD - 1))
        );
        assert_eq!(key.open(b""), Err(OpenError::TooShort(0)));
    }

    #[test]
    fn keys_are_read_as_serf_reads_them() {
        assert_eq!(SecretKey::from_base64("YWJj").unwrap_err(), KeyError::Size);
        assert_eq!(
            SecretKey::from_base64("abc!").unwrap_err().to_string(),
            "illegal base64 data at input byte 3"
        );
        let key = SecretKey::from_base64("kdBhiHF8f0PdghUnk62pFz1Nw3ph0l3O9n+TPkiHgsA=").unwrap();
        assert_eq!(
            key.to_base64(),
            "kdBhiHF8f0PdghUnk62pFz1Nw3ph0l3O9n+TPkiHgsA="
        );
        assert_eq!(format!("{key:?}"), "SecretKey(AES-256)");
    }
}
