//! Compression of gossip datagrams, as memberlist compresses its messages by default
//! (`EnableCompression`): fewer bytes on the wire for the same gossip.
//!
//! Every datagram the node sends, over UDP or as one stream transport frame, goes through
//! [`compress`] before it is sealed (compress, then encrypt, as memberlist does: ciphertext
//! does not compress). What shrinks travels as a compressed datagram (wire kind 11) holding
//! the whole original datagram, kind byte included, as raw DEFLATE; what would not shrink
//! (a bare probe of fifty bytes, random payloads) travels as it is. Every datagram received
//! goes through [`decompress`] once it is opened.
//!
//! Inflating is bounded: nothing legitimate inflates past [`MAX_FRAME`], the largest frame
//! the stream transport carries, so output beyond it (a zip bomb) is refused, as is data
//! that is not DEFLATE. A compressed datagram inside a compressed one is handed back still
//! compressed: senders never nest them, and the node drops it when it decodes.
//!
//! The codec is DEFLATE (miniz_oxide, pure Rust). On datagrams captured from a 20-agent
//! cluster it matched lz4_flex when event payloads were one repeated byte and beat it on
//! text-like payloads (175 against 187 bytes on 188), where lz4 hardly compresses at all.
//!
//! Each datagram is deflated twice, with DEFLATE's fixed Huffman codes and with codes
//! fitted to it, and the smaller kept (as zlib does at its best level): the fitted codes'
//! table costs some 20 bytes, more than they save on a datagram of a few hundred bytes
//! (event datagrams of 20 agents: 82 bytes fixed against 101 fitted, on 190).

use crate::wire::{self, Datagram, MAX_FRAME};
use miniz_oxide::deflate::core::{
    CompressionStrategy, CompressorOxide, TDEFLFlush, TDEFLStatus, compress_to_output,
    create_comp_flags_from_zip_params,
};
use std::borrow::Cow;
use std::cell::RefCell;
use std::thread::LocalKey;

/// miniz's default level. On datagrams of a few hundred bytes every level gives the same
/// size; on large frames (push-pull state, 64 KiB events) it is the usual trade.
const LEVEL: u8 = 6;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecompressError {
    #[error("compressed datagram inflates past {MAX_FRAME} bytes")]
    TooLarge,
    #[error("compressed datagram does not inflate: {0}")]
    Corrupt(String),
}

/// The datagram to send: compressed if that makes it smaller, kind byte included;
/// otherwise as it is.
pub fn compress(datagram: &[u8]) -> Cow<'_, [u8]> {
    let fitted = deflate(datagram, &FITTED);
    let fixed = deflate(datagram, &FIXED);
    let deflated = if fixed.len() < fitted.len() {
        fixed
    } else {
        fitted
    };
    if 1 + deflated.len() < datagram.len() {
        Cow::Owned(wire::compressed_datagram(&deflated))
    } else {
        Cow::Borrowed(datagram)
    }
}

thread_local! {
    /// A compressor per strategy, reset before each datagram: a new one allocates some
    /// 300 KiB, which cost more than compressing a gossip datagram (allocation was most of
    /// the 1,000-member simulation's time). Reset, it deflates exactly as a new one.
    static FITTED: RefCell<CompressorOxide> =
        RefCell::new(compressor(CompressionStrategy::Default));
    static FIXED: RefCell<CompressorOxide> = RefCell::new(compressor(CompressionStrategy::Fixed));
}

/// A compressor at [`LEVEL`] with `strategy`'s Huffman codes, raw DEFLATE.
fn compressor(strategy: CompressionStrategy) -> CompressorOxide {
    CompressorOxide::new(create_comp_flags_from_zip_params(
        LEVEL.into(),
        0,
        strategy.into(),
    ))
}

/// Raw DEFLATE of `data` with one of the compressors.
fn deflate(data: &[u8], compressor: &'static LocalKey<RefCell<CompressorOxide>>) -> Vec<u8> {
    compressor.with_borrow_mut(|compressor| {
        compressor.reset();
        let mut deflated = Vec::with_capacity(data.len() / 2);
        let (status, _) = compress_to_output(compressor, data, TDEFLFlush::Finish, |out| {
            deflated.extend_from_slice(out);
            true
        });
        // collecting into a vector never refuses output, so the whole input went in
        debug_assert_eq!(status, TDEFLStatus::Done);
        deflated
    })
}

/// The datagram a received one carries: a compressed one inflated, any other as it is.
pub fn decompress(datagram: &[u8]) -> Result<Cow<'_, [u8]>, DecompressError> {
    let Ok(Datagram::Compressed(deflated)) = wire::decode(datagram) else {
        return Ok(Cow::Borrowed(datagram));
    };
    miniz_oxide::inflate::decompress_to_vec_with_limit(deflated, MAX_FRAME)
        .map(Cow::Owned)
        .map_err(|e| match e.status {
            miniz_oxide::inflate::TINFLStatus::HasMoreOutput => DecompressError::TooLarge,
            _ => DecompressError::Corrupt(e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What foca's packets look like: two identities, then an event with a payload.
    fn gossip_packet() -> Vec<u8> {
        let mut packet = b"\x08musubi00\x00\x7f\x00\x00\x01\xe8\x84\x01\x00".to_vec();
        packet.extend_from_slice(b"\x08musubi08\x00\x7f\x00\x00\x01\xf0\x84\x01\x00");
        packet.extend_from_slice(b"\x84\xa5LTime\x01\xa4Name\xa6deploy\xa7Payload\xc4\x40");
        packet.extend_from_slice(&[b'x'; 64]);
        wire::foca_datagram(&packet)
    }

    fn deflated(data: &[u8]) -> Vec<u8> {
        wire::compressed_datagram(&deflate(data, &FITTED))
    }

    #[test]
    fn a_compressible_datagram_shrinks_and_comes_back_whole() {
        let datagram = gossip_packet();
        let compressed = compress(&datagram);
        assert!(
            compressed.len() < datagram.len() * 3 / 4,
            "{}",
            compressed.len()
        );
        assert!(matches!(
            wire::decode(&compressed),
            Ok(Datagram::Compressed(_))
        ));
        assert_eq!(decompress(&compressed).unwrap(), datagram);
    }

    #[test]
    fn small_datagrams_take_the_fixed_codes_and_large_ones_fitted_codes() {
        let small = gossip_packet();
        let fixed = deflate(&small, &FIXED);
        assert!(fixed.len() < deflate(&small, &FITTED).len());
        assert_eq!(compress(&small).len(), 1 + fixed.len());
        // a long varied text: its own codes pay for their table
        let large: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("member-{} ", i % 977).into_bytes())
            .collect();
        let fitted = deflate(&large, &FITTED);
        assert!(fitted.len() < deflate(&large, &FIXED).len());
        assert_eq!(compress(&large).len(), 1 + fitted.len());
        assert_eq!(decompress(&compress(&large)).unwrap(), large);
    }

    #[test]
    fn a_reused_compressor_deflates_as_a_new_one() {
        let fresh = |data: &[u8]| {
            let mut compressor = compressor(CompressionStrategy::Default);
            let mut out = Vec::new();
            compress_to_output(&mut compressor, data, TDEFLFlush::Finish, |chunk| {
                out.extend_from_slice(chunk);
                true
            });
            out
        };
        let large = gossip_packet().repeat(40);
        let small = gossip_packet();
        for data in [&large, &small, &large] {
            assert_eq!(deflate(data, &FITTED), fresh(data));
        }
    }

    #[test]
    fn a_datagram_that_would_not_shrink_stays_as_it_is() {
        let probe = wire::foca_datagram(b"\x08musubi00\x00\x7f\x00\x00\x01");
        // bytes with no repetition: DEFLATE only adds to them
        let noise: Vec<u8> = (0..=255u8).map(|i| i.wrapping_mul(167) ^ 0x5a).collect();
        let noisy = wire::query_reply_datagram(&noise);
        for datagram in [probe, noisy] {
            assert!(matches!(compress(&datagram), Cow::Borrowed(d) if *d == datagram));
            assert!(matches!(decompress(&datagram), Ok(Cow::Borrowed(d)) if *d == datagram));
        }
    }

    #[test]
    fn inflating_stops_at_the_frame_limit() {
        assert_eq!(
            decompress(&deflated(&vec![0; MAX_FRAME])).unwrap().len(),
            MAX_FRAME
        );
        // a zip bomb: 64 KiB that would inflate to 64 MiB
        let bomb = deflated(&vec![0; 64 << 20]);
        assert!(bomb.len() < 100 << 10, "{}", bomb.len());
        assert_eq!(decompress(&bomb), Err(DecompressError::TooLarge));
        assert_eq!(
            decompress(&deflated(&vec![0; MAX_FRAME + 1])),
            Err(DecompressError::TooLarge)
        );
    }

    #[test]
    fn garbage_does_not_inflate() {
        // a block of the reserved type
        assert!(matches!(
            decompress(&wire::compressed_datagram(b"\xff\xff\xff\xff")),
            Err(DecompressError::Corrupt(_))
        ));
        // a stream cut short
        let whole = deflated(&gossip_packet());
        assert!(matches!(
            decompress(&whole[..whole.len() / 2]),
            Err(DecompressError::Corrupt(_))
        ));
    }

    #[test]
    fn a_compressed_datagram_inside_another_is_not_inflated_again() {
        let inner = deflated(&gossip_packet());
        let nested = deflated(&inner);
        let once = decompress(&nested).unwrap();
        assert_eq!(once, inner);
        assert!(matches!(wire::decode(&once), Ok(Datagram::Compressed(_))));
    }
}
