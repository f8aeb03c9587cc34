//! The workflow reference: one page per feature of workflow code.
//!
//! The pages live in `docs/reference/` in the repository and are included here so that every
//! Rust example in them is compiled as a doctest (`cargo test -p zart --doc`). Their links to
//! other pages point into the repository's `docs/` folder.
#![doc = include_str!("../../docs/reference/README.md")]

#[doc = include_str!("../../docs/reference/starting.md")]
pub mod starting {}

#[doc = include_str!("../../docs/reference/steps.md")]
pub mod steps {}

#[doc = include_str!("../../docs/reference/retries.md")]
pub mod retries {}

#[doc = include_str!("../../docs/reference/sleeps.md")]
pub mod sleeps {}

#[doc = include_str!("../../docs/reference/events.md")]
pub mod events {}

#[doc = include_str!("../../docs/reference/children.md")]
pub mod children {}

#[doc = include_str!("../../docs/reference/parallel.md")]
pub mod parallel {}

#[doc = include_str!("../../docs/reference/cancellation.md")]
pub mod cancellation {}

#[doc = include_str!("../../docs/reference/versioning.md")]
pub mod versioning {}

#[doc = include_str!("../../docs/reference/app-errors.md")]
pub mod app_errors {}

#[doc = include_str!("../../docs/reference/replay-aware.md")]
pub mod replay_aware {}

#[doc = include_str!("../../docs/reference/retrying-executions.md")]
pub mod retrying_executions {}

#[doc = include_str!("../../docs/reference/state.md")]
pub mod state {}
