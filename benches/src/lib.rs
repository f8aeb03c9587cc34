//! Shared code of Zart's benchmark drivers.
//!
//! Everything here talks to a scratch database ([`scratch`]) that a run creates, migrates and
//! drops again. See `benches/README.md` for the figures and how to read them.

pub mod progress;
pub mod raw;
pub mod scratch;
pub mod stats;
pub mod workflow;
