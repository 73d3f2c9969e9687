//! A coordinate as a probe ack carries it (wire kind 10): every component as a
//! little-endian f32, the vector first, then error, adjustment and height.
//!
//! The ack rides on every probe, once a second per member, so its size is most of the
//! agent's idle bandwidth: 44 bytes here against 100 or so in msgpack's f64s. f32 keeps
//! seven significant digits, far finer than the model's own error (the vector's units
//! are seconds; a microsecond of RTT is 1e-6).

use super::vivaldi::{Coordinate, DIMENSIONS};

const COMPONENTS: usize = DIMENSIONS + 3;
pub const ENCODED_LEN: usize = COMPONENTS * 4;

pub fn encode(coordinate: &Coordinate) -> Vec<u8> {
    coordinate
        .vec
        .iter()
        .chain([
            &coordinate.error,
            &coordinate.adjustment,
            &coordinate.height,
        ])
        .flat_map(|&x| (x as f32).to_le_bytes())
        .collect()
}

/// None unless `bytes` is exactly one valid coordinate (finite numbers).
pub fn decode(bytes: &[u8]) -> Option<Coordinate> {
    if bytes.len() != ENCODED_LEN {
        return None;
    }
    let mut components = bytes
        .chunks_exact(4)
        .map(|chunk| f64::from(f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])));
    let vec = components.by_ref().take(DIMENSIONS).collect();
    let mut next = || components.next().unwrap_or(f64::NAN);
    let coordinate = Coordinate {
        vec,
        error: next(),
        adjustment: next(),
        height: next(),
    };
    coordinate.is_valid().then_some(coordinate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coordinate_survives_to_f32_precision_and_garbage_does_not_decode() {
        let coordinate = Coordinate {
            vec: (0..DIMENSIONS)
                .map(|i| i as f64 * 1.0e-4 - 3.0e-4)
                .collect(),
            error: 0.3,
            adjustment: -2.0e-5,
            height: 1.0e-5,
        };
        let encoded = encode(&coordinate);
        assert_eq!(encoded.len(), ENCODED_LEN);
        let decoded = decode(&encoded).unwrap();
        for (a, b) in decoded.vec.iter().zip(&coordinate.vec) {
            assert!((a - b).abs() < 1.0e-9, "{a} vs {b}");
        }
        assert!((decoded.height - coordinate.height).abs() < 1.0e-12);
        assert!(decode(&encoded[1..]).is_none());
        let mut nan = encoded.clone();
        nan[..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(decode(&nan).is_none());
    }
}
