//! OTLP itself: the protobuf types, the signal kinds, the checked borrowed view of a metrics
//! request, the raw-bytes codecs, point counting and re-encoding, and the builders every
//! producer of OTLP inside leakwatch uses. Nothing here knows about detection or the pipeline.

pub mod build;
pub mod codec;
pub mod count;
pub mod edit;
pub mod proto;
pub mod service;
pub mod signal;
pub mod view;
