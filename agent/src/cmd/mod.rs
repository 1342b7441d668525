//! The commands, one file per family; none uses another (what they share is
//! in `context.rs`, `state.rs` and `tpm/`).

pub mod attest;
pub mod doctor;
pub mod keys;
pub mod transfer;
pub mod world;
