//! One Raft log entry's payload: a request and, when a retry of it could follow, its ID
//! (`dedup`).
//!
//! The JSON is the request's own object with an `"id"` member in front, and after it
//! `"lands_above"` (`dedup`'s fence):
//! `{"id":{"member":1,"nonce":2},"lands_above":7,"V3":{"write":…,"now_ms":…}}`, without
//! `"lands_above"` for entries written before the fence, and without the `"id"` for
//! entries written before IDs existed. That is what `#[serde(flatten)]` makes of it; the
//! impls below write and read the same bytes by hand, because flatten buffers every field
//! of the request in serde's generic `Content` on the way in and out, and every entry
//! takes that way three times on a follower (the leader's encode, the peer request's
//! decode, its own log's encode).
//!
//! A binary from before the fence reads `"lands_above"` as a second request and refuses
//! the entry: it stops rather than apply what the others would refuse.

use crate::dedup::RequestId;
use crate::v3::V3Write;
use crate::{AuthOp, Request, V2Op};
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, VariantAccess,
    Visitor,
};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// One Raft log entry: a request and, when a retry of it could follow, its ID. Entries
/// written before IDs existed decode with none.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposal {
    pub id: Option<RequestId>,
    /// Every log entry carrying this proposal, first attempt or retry, lands above this
    /// index: the proposer's applied index when it made the proposal (any entry appended
    /// later lands above everything committed). `None` in entries written before it
    /// existed, and without an ID.
    pub lands_above: Option<u64>,
    pub request: Request,
}

impl fmt::Display for Proposal {
    /// How openraft logs an entry: the request, and its ID when it has one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.id {
            Some(id) => write!(
                f,
                "{} (request {:x}/{:x})",
                self.request, id.member, id.nonce
            ),
            None => write!(f, "{}", self.request),
        }
    }
}

impl Proposal {
    /// A proposal that no retry will follow (the leader's own housekeeping).
    pub fn once(request: Request) -> Self {
        Self {
            id: None,
            lands_above: None,
            request,
        }
    }
}

/// The member `"id"` goes by.
const ID: &str = "id";
/// The member `"lands_above"` goes by; every other member is the request's variant.
const LANDS_ABOVE: &str = "lands_above";

// A struct variant's fields as the derived `Serialize` of `Request` writes them: an
// object of its fields in declaration order. Borrowed, so nothing is copied.
#[derive(Serialize)]
struct V2Fields<'a> {
    op: &'a V2Op,
    now_ms: u64,
}

#[derive(Serialize)]
struct ExpireFields {
    now_ms: u64,
}

#[derive(Serialize)]
struct V3Fields<'a> {
    write: &'a V3Write,
    now_ms: u64,
}

#[derive(Serialize)]
struct V3AsFields<'a> {
    write: &'a V3Write,
    now_ms: u64,
    auth_revision: u64,
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let members = 1 + usize::from(self.id.is_some()) + usize::from(self.lands_above.is_some());
        let mut map = serializer.serialize_map(Some(members))?;
        if let Some(id) = &self.id {
            map.serialize_entry(ID, id)?;
        }
        if let Some(index) = &self.lands_above {
            map.serialize_entry(LANDS_ABOVE, index)?;
        }
        match &self.request {
            Request::V2 { op, now_ms } => map.serialize_entry(
                "V2",
                &V2Fields {
                    op,
                    now_ms: *now_ms,
                },
            ),
            Request::Expire { now_ms } => {
                map.serialize_entry("Expire", &ExpireFields { now_ms: *now_ms })
            }
            Request::Auth(op) => map.serialize_entry::<_, AuthOp>("Auth", op),
            Request::V3 { write, now_ms } => map.serialize_entry(
                "V3",
                &V3Fields {
                    write,
                    now_ms: *now_ms,
                },
            ),
            Request::V3As {
                write,
                now_ms,
                auth_revision,
            } => map.serialize_entry(
                "V3As",
                &V3AsFields {
                    write,
                    now_ms: *now_ms,
                    auth_revision: *auth_revision,
                },
            ),
        }?;
        map.end()
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ProposalVisitor)
    }
}

struct ProposalVisitor;

impl<'de> Visitor<'de> for ProposalVisitor {
    type Value = Proposal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a log entry: a request, and its ID if it has one")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Proposal, A::Error> {
        // `None` until the member is read; `null` reads as no ID, as the derived form had it.
        let mut id: Option<Option<RequestId>> = None;
        let mut lands_above = None;
        let mut request = None;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            if key == ID {
                if id.is_some() {
                    return Err(de::Error::duplicate_field(ID));
                }
                id = Some(map.next_value()?);
            } else if key == LANDS_ABOVE {
                if lands_above.is_some() {
                    return Err(de::Error::duplicate_field(LANDS_ABOVE));
                }
                lands_above = Some(map.next_value()?);
            } else if request.is_some() {
                return Err(de::Error::custom(format_args!(
                    "a log entry holds one request; {key:?} is a second"
                )));
            } else {
                // The member's name is the variant, its value the variant's body: the
                // request's derived `Deserialize` reads them as the enum it is.
                request = Some(Request::deserialize(VariantOfMap { key, map: &mut map })?);
            }
        }
        let request = request.ok_or_else(|| de::Error::custom("a log entry without a request"))?;
        Ok(Proposal {
            id: id.flatten(),
            lands_above,
            request,
        })
    }
}

/// A member's name, borrowed from the input where it can be.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// The rest of one map member, read as an externally tagged enum: `key` names the
/// variant, the member's value is its body.
struct VariantOfMap<'a, 'de, A> {
    key: Cow<'de, str>,
    map: &'a mut A,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for VariantOfMap<'_, 'de, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'a, 'de, A: MapAccess<'de>> EnumAccess<'de> for VariantOfMap<'a, 'de, A> {
    type Error = A::Error;
    type Variant = MemberValue<'a, A>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, MemberValue<'a, A>), A::Error> {
        let variant = seed.deserialize(self.key.into_deserializer())?;
        Ok((variant, MemberValue(self.map)))
    }
}

/// The value of the map member whose name was the variant: the variant's body.
struct MemberValue<'a, A>(&'a mut A);

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for MemberValue<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.next_value()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(seed)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(Body::Tuple(len, visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.next_value_seed(Body::Struct(fields, visitor))
    }
}

/// A tuple or struct variant's body, handed to the derived visitor.
enum Body<V> {
    Tuple(usize, V),
    Struct(&'static [&'static str], V),
}

impl<'de, V: Visitor<'de>> DeserializeSeed<'de> for Body<V> {
    type Value = V::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        match self {
            Body::Tuple(len, visitor) => deserializer.deserialize_tuple(len, visitor),
            Body::Struct(fields, visitor) => deserializer.deserialize_struct("", fields, visitor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Expiry;
    use musubi_proto::etcdserverpb::PutRequest;

    /// The derived form the hand-written impls replace: what every log written so far
    /// holds.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Flattened {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<RequestId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lands_above: Option<u64>,
        #[serde(flatten)]
        request: Request,
    }

    fn every_variant() -> Vec<Request> {
        let put = V3Write::Put(PutRequest {
            key: b"k\"\\\n".to_vec(),
            value: vec![0, 255, 7],
            lease: 9,
            ..Default::default()
        });
        vec![
            Request::V2 {
                op: V2Op::Set {
                    key: "/a/b".into(),
                    value: Some("v".into()),
                    expiry: Expiry::At(5),
                    refresh: false,
                },
                now_ms: 3,
            },
            Request::Expire { now_ms: 7 },
            Request::Auth(AuthOp::DeleteUser { name: "u".into() }),
            Request::V3 {
                write: put.clone(),
                now_ms: 11,
            },
            Request::V3As {
                write: put,
                now_ms: 12,
                auth_revision: 4,
            },
        ]
    }

    #[test]
    fn written_and_read_as_the_derived_flatten_did() {
        for request in every_variant() {
            for (id, lands_above) in [
                (None, None),
                (
                    Some(RequestId {
                        member: 1,
                        nonce: u64::MAX,
                    }),
                    None,
                ),
                (
                    Some(RequestId {
                        member: 1,
                        nonce: 2,
                    }),
                    Some(u64::MAX),
                ),
            ] {
                let ours = Proposal {
                    id,
                    lands_above,
                    request: request.clone(),
                };
                let derived = Flattened {
                    id,
                    lands_above,
                    request: request.clone(),
                };
                let json = serde_json::to_string(&ours).unwrap();
                assert_eq!(json, serde_json::to_string(&derived).unwrap());
                assert_eq!(serde_json::from_str::<Proposal>(&json).unwrap(), ours);
                assert_eq!(serde_json::from_str::<Flattened>(&json).unwrap(), derived);
            }
        }
    }

    #[test]
    fn old_entries_without_an_id_still_decode() {
        let request = Request::Expire { now_ms: 7 };
        let old = serde_json::to_string(&request).unwrap();
        let decoded: Proposal = serde_json::from_str(&old).unwrap();
        assert_eq!(decoded, Proposal::once(request));
        let with_id = Proposal {
            id: Some(RequestId {
                member: 1,
                nonce: 3,
            }),
            ..decoded
        };
        let round = serde_json::to_string(&with_id).unwrap();
        assert_eq!(serde_json::from_str::<Proposal>(&round).unwrap(), with_id);
        let null_id = r#"{"id":null,"Expire":{"now_ms":7}}"#;
        let derived: Flattened = serde_json::from_str(null_id).unwrap();
        assert_eq!(derived.id, None);
        assert_eq!(
            serde_json::from_str::<Proposal>(null_id).unwrap(),
            Proposal::once(Request::Expire { now_ms: 7 })
        );
    }

    #[test]
    fn the_id_may_follow_the_request_and_keys_may_be_escaped() {
        let json = r#"{"V\u0033":{"write":{"Compact":{"revision":3,"physical":false}},"now_ms":1},"id":{"member":2,"nonce":3}}"#;
        let read: Proposal = serde_json::from_str(json).unwrap();
        assert_eq!(
            read.id,
            Some(RequestId {
                member: 2,
                nonce: 3
            })
        );
        assert!(matches!(read.request, Request::V3 { now_ms: 1, .. }));
    }

    #[test]
    fn a_malformed_entry_is_refused_with_a_reason() {
        for (json, reason) in [
            (r#"{"id":{"member":1,"nonce":2}}"#, "without a request"),
            (
                r#"{"Expire":{"now_ms":1},"Expire":{"now_ms":2}}"#,
                "is a second",
            ),
            (
                r#"{"id":{"member":1,"nonce":2},"id":{"member":1,"nonce":2},"Expire":{"now_ms":1}}"#,
                "duplicate field",
            ),
            (
                r#"{"lands_above":1,"lands_above":1,"Expire":{"now_ms":1}}"#,
                "duplicate field",
            ),
            (r#"{"Bogus":{}}"#, "unknown variant"),
            (r#"{"Expire":{}}"#, "missing field"),
            ("[]", "invalid type"),
        ] {
            let error = serde_json::from_str::<Proposal>(json)
                .unwrap_err()
                .to_string();
            assert!(error.contains(reason), "{json}: {error}");
        }
    }

    /// A binary from before the fence reads every member but `"id"` as the request, so
    /// meeting `"lands_above"` before the request it refuses the entry as an unknown
    /// request (`{"Bogus":{}}` above) and stops, rather than apply what the others refuse.
    #[test]
    fn lands_above_is_written_before_the_request() {
        let proposal = Proposal {
            id: Some(RequestId {
                member: 1,
                nonce: 2,
            }),
            lands_above: Some(5),
            request: Request::Expire { now_ms: 7 },
        };
        assert_eq!(
            serde_json::to_string(&proposal).unwrap(),
            r#"{"id":{"member":1,"nonce":2},"lands_above":5,"Expire":{"now_ms":7}}"#
        );
    }
}
