//! The codec every generated service and client uses: prost's, with a smaller first
//! buffer.
//!
//! tonic gives every call a buffer of the codec's size to decode its requests into and one
//! to encode its replies in, 8 KiB each unless the codec says otherwise, kept for as long
//! as the call lasts. etcd's requests and replies are mostly a few hundred bytes, and a
//! watch stream lasts as long as its client: with 1 KiB, 3,000 open watch streams cost the
//! server 34 MiB instead of 53 (docs/benchmarks.md), and a put's two
//! allocations leave the allocator's slab paths. A buffer still grows to whatever a
//! message needs.

use prost::Message;
use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::ProstCodec;

/// Room for a typical request or reply without growing.
const FIRST_BUFFER: usize = 1024;
/// tonic's own: how much a stream encodes before it lets other tasks run.
const YIELD_THRESHOLD: usize = 32 * 1024;

/// prost's codec with [`FIRST_BUFFER`]-byte buffers.
#[derive(Debug, Clone, Default)]
pub struct SmallBuffers<T, U>(PhantomData<(T, U)>);

impl<T, U> Codec for SmallBuffers<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = <ProstCodec<T, U> as Codec>::Decoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}

fn settings() -> BufferSettings {
    BufferSettings::new(FIRST_BUFFER, YIELD_THRESHOLD)
}
