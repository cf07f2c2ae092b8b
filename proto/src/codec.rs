//! The codec every generated client and server uses: prost, with a small
//! initial encode buffer.
//!
//! tonic allocates each response stream's encode buffer up front (8 KiB by
//! default). A notification stream can sit idle for hours, and a server holds
//! thousands of them, so that buffer was the largest part of an idle
//! subscriber's memory. Starting at 1 KiB costs nothing for unary calls (their
//! messages are small) and the buffer grows as a busy stream needs; the yield
//! threshold (how much is batched into one HTTP/2 write) stays tonic's default.
//!
//! A message that cannot be decoded (a string that is not UTF-8, a truncated
//! field) is the sender's fault: tonic reports it as INTERNAL, this codec as
//! INVALID_ARGUMENT with reason `UNDECODABLE_REQUEST`.

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::reason::Reason;

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
    type Decoder = LeanDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::new(INITIAL_BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        LeanDecoder(ProstCodec::<T, U>::raw_decoder(BufferSettings::new(
            INITIAL_BUFFER,
            YIELD_THRESHOLD,
        )))
    }
}

/// prost's decoder, reporting undecodable messages as the sender's fault.
#[derive(Debug)]
pub struct LeanDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for LeanDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0
            .decode(buf)
            .map_err(|status| undecodable(status.message()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// INVALID_ARGUMENT for a message that could not be decoded.
fn undecodable(cause: &str) -> Status {
    let reason = Reason::UndecodableRequest;
    let details =
        ErrorDetails::with_error_info(reason.as_str(), "grpc", std::collections::HashMap::new());
    Status::with_error_details(
        reason.code(),
        format!(
            "the message could not be decoded ({cause}); check that every string is UTF-8 and the message matches the proto"
        ),
        details,
    )
}
