//! Background work: the ingress micro-batcher, the processor, the forwarder with its attempt
//! recorder and its sweeper, and the campaign sender with its runner.

pub mod campaign_follow;
pub mod campaign_runner;
mod consume;
pub mod forwarder;
mod lanes;
pub mod processor;
pub mod publisher;
pub mod recorder;
pub mod sender;
pub mod sweeper;
