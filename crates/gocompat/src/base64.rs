//! Base64 as Go's `encoding/base64.StdEncoding` reads and writes it: Serf's keys are in
//! this form (`-encrypt`, the keyring file, `serf keys`), and Serf's error for a malformed
//! key, `illegal base64 data at input byte N`, carries Go's offset. The `serf` CLI prints
//! that message, so we decode as Go decodes: padding required, `\r` and `\n` skipped,
//! stray bits in the last symbol accepted, and the error at the offset Go reports.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const PAD: u8 = b'=';

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("illegal base64 data at input byte {0}")]
pub struct CorruptInput(pub usize);

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push(PAD as char);
            }
        }
    }
    out
}

fn symbol_value(byte: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == byte).map(|v| v as u8)
}

fn is_newline(byte: u8) -> bool {
    byte == b'\n' || byte == b'\r'
}

pub fn decode(text: &str) -> Result<Vec<u8>, CorruptInput> {
    let src = text.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut at = 0;
    loop {
        let (next, quantum, done) = decode_quantum(src, at)?;
        out.extend_from_slice(&quantum);
        if done {
            return Ok(out);
        }
        at = next;
    }
}

/// One group of up to four symbols from `at`: the offset after it, its bytes, and whether
/// the input ends there (Go's `decodeQuantum`, offsets included).
fn decode_quantum(src: &[u8], mut at: usize) -> Result<(usize, Vec<u8>, bool), CorruptInput> {
    let mut values = [0u8; 4];
    let mut filled = 0;
    while filled < 4 {
        let Some(&byte) = src.get(at) else {
            return match filled {
                0 => Ok((at, Vec::new(), true)),
                // padding is required, so a short group is where the input went wrong
                _ => Err(CorruptInput(at - filled)),
            };
        };
        at += 1;
        if is_newline(byte) {
            continue;
        }
        if let Some(value) = symbol_value(byte) {
            values[filled] = value;
            filled += 1;
            continue;
        }
        if byte != PAD || filled < 2 {
            return Err(CorruptInput(at - 1));
        }
        if filled == 2 {
            // "xx==": the second '=' must follow, newlines aside
            while src.get(at).copied().is_some_and(is_newline) {
                at += 1;
            }
            match src.get(at) {
                None => return Err(CorruptInput(src.len())),
                Some(&PAD) => at += 1,
                Some(_) => return Err(CorruptInput(at - 1)),
            }
        }
        while src.get(at).copied().is_some_and(is_newline) {
            at += 1;
        }
        if at < src.len() {
            return Err(CorruptInput(at));
        }
        return Ok((at, bytes_of(&values, filled), true));
    }
    Ok((at, bytes_of(&values, 4), false))
}

/// The bytes `symbols` six-bit values carry (2 symbols give 1 byte, 3 give 2, 4 give 3).
fn bytes_of(values: &[u8; 4], symbols: usize) -> Vec<u8> {
    let n = values
        .iter()
        .fold(0u32, |n, &value| n << 6 | u32::from(value));
    let all = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
    all[..symbols - 1].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_gos_offsets_as_etcds_gateway_reports_them() {
        let at = |text: &str| decode(text).unwrap_err().0;
        assert_eq!(at("Zm9vMQ"), 4);
        assert_eq!(at("Zm9"), 0);
        assert_eq!(at("Zm9v====="), 4);
        assert_eq!(at("Zm-_"), 2);
        assert_eq!(at("YQ="), 3);
        assert_eq!(at("Y==="), 1);
        assert_eq!(at("YQ==YQ=="), 4);
        assert_eq!(at("YQ=x"), 2);
    }

    #[test]
    fn newlines_are_skipped_and_stray_bits_taken() {
        assert_eq!(decode("Zm\n9v\r\n").unwrap(), b"foo");
        assert_eq!(decode("Zm9vMR==").unwrap(), b"foo1");
        assert_eq!(decode("Zm9=").unwrap(), b"fo");
        assert_eq!(decode("").unwrap(), b"");
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..40 {
            assert_eq!(decode(&encode(&data[..len])).unwrap(), &data[..len]);
        }
        assert_eq!(encode(b"foo1"), "Zm9vMQ==");
    }

    #[test]
    fn round_trips_every_length() {
        let data: Vec<u8> = (0..=255).collect();
        for len in 0..40 {
            assert_eq!(decode(&encode(&data[..len])).unwrap(), &data[..len]);
        }
        assert_eq!(encode(b"ab"), "YWI=");
        assert_eq!(encode(b"abc"), "YWJj");
        assert_eq!(encode(b"a"), "YQ==");
    }

    #[test]
    fn errors_carry_gos_offsets() {
        // offsets seen from Debian's serf: `-encrypt 'abc!'` and `serf keys -install abc`
        assert_eq!(decode("abc!"), Err(CorruptInput(3)));
        assert_eq!(decode("abc"), Err(CorruptInput(0)));
        assert_eq!(decode("ab"), Err(CorruptInput(0)));
        assert_eq!(decode("YWJjZA"), Err(CorruptInput(4)));
        assert_eq!(decode("YQ="), Err(CorruptInput(3)));
        assert_eq!(decode("Y==="), Err(CorruptInput(1)));
        assert_eq!(decode("YQ==YQ=="), Err(CorruptInput(4)));
        assert_eq!(decode("YQ=x"), Err(CorruptInput(2)));
    }

    #[test]
    fn newlines_are_skipped_and_stray_bits_accepted() {
        assert_eq!(decode("YW\nJj\r\n").unwrap(), b"abc");
        assert_eq!(decode("YR==").unwrap(), b"a");
    }
}
