//! A tonic codec that moves protobuf messages as opaque bytes.
//!
//! The receivers take export requests with it, so the original bytes are
//! still at hand to forward (they are decoded once, into the lean view, by
//! the engine), and the exporter sends them on with it: what leaves
//! leakwatch is what arrived, never a re-encode.

use bytes::{Buf, BufMut, Bytes};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

/// Encodes and decodes `Bytes` as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// Encodes a list of byte strings as their concatenation, one gRPC message; decodes as
/// [`RawCodec`]. The exporter sends several queued export requests of one signal with it as
/// one export: an `Export*ServiceRequest` is a single `repeated` field, and protobuf parses
/// concatenated encodings as the merge of the messages, so the concatenation *is* the encoding
/// of the merged request — nothing is decoded or re-encoded, and the parts are copied once,
/// into tonic's encode buffer, as a single request would be.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConcatCodec;

impl Codec for ConcatCodec {
    type Encode = Vec<Bytes>;
    type Decode = Bytes;
    type Encoder = ConcatCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        ConcatCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for ConcatCodec {
    type Item = Vec<Bytes>;
    type Error = Status;

    fn encode(&mut self, parts: Vec<Bytes>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(parts.iter().map(Bytes::len).sum());
        for part in parts {
            dst.put(part);
        }
        Ok(())
    }
}
