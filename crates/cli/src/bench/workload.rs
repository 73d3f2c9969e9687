//! The requests a run sends, prebuilt: each request is the bytes before the key, the key's
//! digits, and the bytes after it, so producing one is three copies into a reused buffer.

use std::time::Instant;

/// The keys API operation under load.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Op {
    Put,
    Get,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
        }
    }
}

/// When a run stops issuing requests.
#[derive(Clone, Copy, Debug)]
pub enum Budget {
    Requests(u64),
    Until(Instant),
}

/// How keys are chosen.
#[derive(Clone, Copy, Debug)]
pub struct KeyChoice {
    pub size: usize,
    pub space: u64,
    pub sequential: bool,
}

/// One endpoint's prebuilt request, split around the key.
pub struct Template {
    before_key: Vec<u8>,
    after_key: Vec<u8>,
}

impl Template {
    /// `host` is the `host:port` of the endpoint; `prefix` the key directory (e.g. `/bench`).
    pub fn new(op: Op, host: &str, prefix: &str, value_size: usize, quorum: bool) -> Self {
        let prefix = prefix.trim_end_matches('/');
        match op {
            Op::Put => {
                let value = value_bytes(value_size);
                let body_len = "value=".len() + value.len();
                let mut after_key = format!(
                    " HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {body_len}\r\n\r\nvalue="
                )
                .into_bytes();
                after_key.extend_from_slice(&value);
                Template {
                    before_key: format!("PUT /v2/keys{prefix}/").into_bytes(),
                    after_key,
                }
            }
            Op::Get => {
                let query = if quorum { "?quorum=true" } else { "" };
                Template {
                    before_key: format!("GET /v2/keys{prefix}/").into_bytes(),
                    after_key: format!("{query} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
                }
            }
        }
    }

    /// Append the request for key number `n` to `out`.
    pub fn write(&self, n: u64, key_size: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.before_key);
        write_key(n, key_size, out);
        out.extend_from_slice(&self.after_key);
    }
}

/// Key `n` as decimal digits, zero-padded to `size` (wider if `n` needs more digits).
fn write_key(mut n: u64, size: usize, out: &mut Vec<u8>) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out.extend(std::iter::repeat_n(b'0', size.saturating_sub(len)));
    out.extend_from_slice(&digits[i..]);
}

/// A value of lowercase letters: no form or URL escaping needed, not trivially compressible.
fn value_bytes(size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| b'a' + ((i * 7 + i / 26) % 26) as u8)
        .collect()
}

/// xorshift64*: a fast per-connection generator for random keys; quality is not a concern.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_request_carries_padded_key_and_form_value() {
        let t = Template::new(Op::Put, "h:1", "/bench/", 3, false);
        let mut out = Vec::new();
        t.write(42, 5, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("PUT /v2/keys/bench/00042 HTTP/1.1\r\nHost: h:1\r\n"),
            "{text}"
        );
        assert!(
            text.ends_with("Content-Length: 9\r\n\r\nvalue=aho"),
            "{text}"
        );
    }

    #[test]
    fn get_request_has_no_body() {
        let t = Template::new(Op::Get, "h:1", "/b", 64, true);
        let mut out = Vec::new();
        t.write(123456, 2, &mut out);
        assert_eq!(
            out,
            b"GET /v2/keys/b/123456?quorum=true HTTP/1.1\r\nHost: h:1\r\n\r\n"
        );
    }
}
