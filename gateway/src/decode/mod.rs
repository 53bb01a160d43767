//! Payload decoders: bytes on a topic in, readings (not yet normalized) out.

pub mod mapping;
