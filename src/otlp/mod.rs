//! OTLP itself: the protobuf types, the signal kinds, the checked borrowed view of a metrics
//! request, the raw-bytes codecs, point counting and re-encoding, and the builders every
//! producer of OTLP inside leakwatch uses. Nothing here knows about detection or the pipeline.

pub mod codec;
pub mod proto;
pub mod signal;
pub mod view;
