//! `run_forward` end to end.
