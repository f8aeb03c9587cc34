//! Shared code of Zart's benchmarks: the `zart-bench` latency driver, the `zart-load` driver
//! that measures every figure of issue #8 in one run, its SQLite counterpart `zart-load-sqlite`
//! ([`sqlite`], issue #15) and MySQL/MariaDB counterpart `zart-load-mysql` ([`mysql`], issue
//! #17), what those two share ([`common`]), and the criterion micro-benches in
//! `benches/benches/`.
//!
//! Everything here talks to a scratch database ([`scratch`]) that a run creates, migrates and
//! drops again. See `benches/README.md` for the figures and how to read them.

pub mod common;
pub mod dbstats;
pub mod drain;
pub mod fleet;
pub mod history;
pub mod listing;
pub mod micro;
pub mod mysql;
pub mod progress;
pub mod raw;
pub mod report;
pub mod retention;
pub mod scratch;
pub mod sqlite;
pub mod stats;
pub mod tenancy;
pub mod throughput;
pub mod workflow;
