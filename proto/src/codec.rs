//! The codec every generated client and server uses: prost, with a small
//! initial encode buffer.
//!
//! tonic allocates each response stream's encode buffer up front (8 KiB by
//! default). A notification stream can sit idle for hours, and a server holds
//! thousands of them, so that buffer was the largest part of an idle
//! subscriber's memory. Starting at 1 KiB costs nothing for unary calls (their
//! messages are small) and the buffer grows as a busy stream needs; the yield
//! threshold (how much is batched into one HTTP/2 write) stays tonic's default.

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// The initial size of each call's encode and decode buffers.
const INITIAL_BUFFER: usize = 1024;
/// Bytes batched before a streaming response yields a chunk (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// [`ProstCodec`] with [`INITIAL_BUFFER`]-byte buffers.
#[derive(Debug)]
pub struct LeanProstCodec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for LeanProstCodec<T, U> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T, U> Codec for LeanProstCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(INITIAL_BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(INITIAL_BUFFER, YIELD_THRESHOLD))
    }
}
