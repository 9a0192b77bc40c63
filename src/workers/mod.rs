//! Background work: the ingress micro-batcher and the processor.

pub mod processor;
pub mod publisher;
