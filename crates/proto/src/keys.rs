//! Key-range arithmetic that both ends of the protocol share: the store resolves
//! `range_end`s with it and every client tool builds them with it, so they must agree.

/// The end of the range of keys starting with `prefix` (etcd's `GetPrefixRangeEnd`, what
/// etcdctl's `--prefix` sends): the prefix with its last byte below 0xff incremented and
/// what follows dropped; `"\0"` (to the end of the keyspace) when every byte is 0xff.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_ends_increment_the_last_byte_below_ff() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"ab"), b"ac");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"a\xff\xff"), b"b");
    }

    #[test]
    fn all_ff_or_empty_prefixes_end_at_the_end_of_the_keyspace() {
        assert_eq!(prefix_end(b"\xff\xff"), b"\0");
        assert_eq!(prefix_end(b""), b"\0");
    }
}
