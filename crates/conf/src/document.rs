//! A rendered document's bytes, as written to `--out` files and hashed for `--check` and
//! consumer reports: pretty JSON with a 2-space indent and one trailing newline.

use serde_json::Value;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub value: Value,
    pub bytes: Vec<u8>,
    /// Lowercase hex sha256 of `bytes`.
    pub sha256: String,
}

impl Document {
    pub fn new(value: Value) -> Document {
        let mut bytes = serde_json::to_vec_pretty(&value).expect("a Value always serialises");
        bytes.push(b'\n');
        let sha256 = hex(&Sha256::digest(&bytes));
        Document {
            value,
            bytes,
            sha256,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_two_space_json_with_a_newline_and_hashed_as_written() {
        let document = Document::new(serde_json::json!({"a": [1]}));
        assert_eq!(document.bytes, b"{\n  \"a\": [\n    1\n  ]\n}\n");
        assert_eq!(
            document.sha256,
            hex(&Sha256::digest(b"{\n  \"a\": [\n    1\n  ]\n}\n"))
        );
    }
}
