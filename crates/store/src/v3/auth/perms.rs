//! Whether a user's permissions cover a key or a range, as etcd decides it: the
//! permissions of all the user's roles are intervals of keys; a single key is allowed when
//! one of them holds it, a range when those it meets join without a gap and span it
//! (etcd's interval tree `Intersects` and `Contains`).

use musubi_proto::authpb::Permission;

/// What a request needs of a key range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// `[from, to)`; `to == None`: every key from `from` on.
#[derive(Debug)]
struct Interval {
    from: Vec<u8>,
    to: Option<Vec<u8>>,
}

/// A permission or a request as an interval, with etcd's range_end conventions: empty is
/// the one key (`[key, key+"\0")`), `"\0"` every key from `key` on.
fn interval(key: &[u8], range_end: &[u8]) -> Interval {
    let to = match range_end {
        [] => Some([key, &[0]].concat()),
        [0] => None,
        end => Some(end.to_vec()),
    };
    Interval {
        from: key.to_vec(),
        to,
    }
}

/// `end` (None: no end) lies at or after `key`.
fn reaches(end: &Option<Vec<u8>>, key: &[u8]) -> bool {
    end.as_deref().is_none_or(|e| e >= key)
}

/// `a` ends at or after `b` ends.
fn ends_after(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> bool {
    match (a, b) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a >= b,
    }
}

impl Interval {
    fn intersects(&self, other: &Interval) -> bool {
        let before = |end: &Option<Vec<u8>>, key: &[u8]| end.as_deref().is_some_and(|e| e <= key);
        !before(&self.to, &other.from) && !before(&other.to, &self.from)
    }
}

/// Whether `perms` cover the request `[key, range_end)`.
pub(super) fn covers<'a>(
    perms: impl Iterator<Item = &'a Permission>,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let want = interval(key, range_end);
    let mut hits: Vec<Interval> = perms
        .map(|p| interval(&p.key, &p.range_end))
        .filter(|p| p.intersects(&want))
        .collect();
    if range_end.is_empty() {
        return !hits.is_empty();
    }
    hits.sort_by(|a, b| a.from.cmp(&b.from));
    let Some((first, rest)) = hits.split_first() else {
        return false;
    };
    let mut reach = first.to.clone();
    for next in rest {
        if !reaches(&reach, &next.from) {
            return false; // a gap
        }
        if !ends_after(&reach, &next.to) {
            reach = next.to.clone();
        }
    }
    first.from <= want.from && ends_after(&reach, &want.to)
}
