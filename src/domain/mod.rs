//! The pure core: events, statuses, providers' formats, projects, and the rules of forwarding
//! (signing, retries, the circuit breaker). No IO, no async runtime.

pub mod apply;
pub mod breaker;
pub mod campaign;
pub mod delivery;
pub mod endpoint;
pub mod event;
pub mod ids;
pub mod phone;
pub mod project;
pub mod providers;
pub mod sealing;
pub mod signing;
pub mod status;
pub mod task;
pub mod text;
pub mod time;
