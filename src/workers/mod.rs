//! Background work: the ingress micro-batcher, the processor, and the forwarder with its
//! attempt recorder and its sweeper.

pub mod forwarder;
pub mod processor;
pub mod publisher;
pub mod recorder;
pub mod sweeper;
