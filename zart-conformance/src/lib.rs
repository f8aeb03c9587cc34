//! The backend contract of Zart as a test suite: every [`zart::Scheduler`] backend runs it.
//!
//! The core reaches storage only through the `Scheduler` trait, and the trait's docs say what
//! each call must do. This crate checks it: a backend is done when it passes every case here.
//! A backend supplies a [`Backend`], a factory of fresh, empty stores, each wrapped in a
//! [`Harness`]: the scheduler itself, a test clock it can move forward, and a read-only view of
//! the executions and steps it stored ([`Fixture`]). Then one line in the backend's test file
//! runs the whole suite, one `#[tokio::test]` per case:
//!
//! ```no_run
//! # use std::time::Duration;
//! # use zart_conformance::{ExecutionRow, Fixture, StepRow};
//! # struct MyStore;
//! # #[zart::async_trait]
//! # impl Fixture for MyStore {
//! #     async fn advance_clock(&self, _: Duration) {}
//! #     async fn execution(&self, _: &str) -> Option<ExecutionRow> { None }
//! #     async fn steps(&self, _: &str) -> Vec<StepRow> { Vec::new() }
//! # }
//! # fn my_scheduler(_: &MyStore) -> zart::scheduler::DynScheduler { unimplemented!() }
//! // zart-mybackend/tests/conformance.rs
//! use zart_conformance::{Backend, Harness};
//!
//! struct MyBackend;
//!
//! #[zart::async_trait]
//! impl Backend for MyBackend {
//!     async fn fresh(&self) -> Harness {
//!         let store = MyStore; // a new, empty store with its own test clock
//!         Harness::new(my_scheduler(&store), store)
//!     }
//! }
//!
//! zart_conformance::suite!(MyBackend);
//! # fn main() {}
//! ```
//!
//! The test file's crate needs `tokio` (with `macros` and `rt-multi-thread`) as a
//! dev-dependency: the generated tests are `#[tokio::test]`s.
//!
//! Cases drive the backend through the core (a real [`zart::Worker`] and
//! [`zart::DurableScheduler`]) and, where the contract is about a single call (fencing, claims,
//! conflicts), through the trait directly as a fake worker would. Side effects of step bodies
//! are counted in memory; time moves with [`Fixture::advance_clock`], never by waiting. Each
//! case is small, starts from an empty store, and can fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod audit;
pub mod cases;
pub mod env;
pub mod history;
pub mod presence;
pub mod tasks;

use std::time::Duration;

use async_trait::async_trait;
use zart::scheduler::{DynScheduler, StepKind, StepStatus};
use zart::{ErrorRecord, ExecutionStatus};

pub use env::Env;

/// A factory of fresh backends: what a backend crate implements to run the suite.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A new, empty store (no executions, no tasks, no steps, no events) with its scheduler,
    /// its own test clock starting at the real time, and a read-only view of it. Each case
    /// calls this once; stores must not share state.
    async fn fresh(&self) -> Harness;

    /// Cases this backend does not run, each with the reason (a behaviour the backend cannot
    /// offer, which its docs must say). Empty by default; every name must be a case of the
    /// suite ([`cases::names`]), which the generated test `conformance_skips_are_real_cases`
    /// checks and which it prints with the reasons. A skipped case passes without running,
    /// so keep this list short and documented.
    fn skips(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
}

/// What a test may do to a store besides the [`zart::Scheduler`] calls: move its clock and read
/// what it stored. It also keeps whatever the store needs alive (a database dropped with it).
#[async_trait]
pub trait Fixture: Send + Sync + 'static {
    /// Moves the store's clock (the time every call of the scheduler sees: lease expiry, sleeps,
    /// event timeouts, retry back-offs, deadlines) forward by `by`, for every connection at
    /// once, then wakes the workers of the `"default"` queue as a new start would, so they look
    /// for work due at the new time.
    async fn advance_clock(&self, by: Duration);

    /// One execution as stored, or `None` if the id is unknown.
    async fn execution(&self, id: &str) -> Option<ExecutionRow>;

    /// The step rows of one execution (steps, sleeps, event waits, children, patch markers),
    /// in `seq` order.
    async fn steps(&self, id: &str) -> Vec<StepRow>;

    /// A new scheduler on the same store, as a process restarted on it would build (new
    /// connections, nothing kept in memory). The random histories restart the backend with it
    /// and go on with the new one; `None` (the default) leaves restarts out of them.
    async fn reopen(&self) -> Option<DynScheduler> {
        None
    }
}

/// One execution as stored (`zart_executions` in the Postgres backend).
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionRow {
    /// Its status.
    pub status: ExecutionStatus,
    /// The output, once completed.
    pub output: Option<serde_json::Value>,
    /// The recorded error, once failed or cancelled.
    pub error: Option<ErrorRecord>,
    /// How many times it was claimed.
    pub attempts: u32,
    /// The parent execution, for a child workflow.
    pub parent_id: Option<String>,
}

/// One step row as stored (`zart_steps` in the Postgres backend).
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    /// The step name (`event:<name>` for an event wait).
    pub name: String,
    /// Its position in the execution, from 0.
    pub seq: u32,
    /// Its status.
    pub status: StepStatus,
    /// What it stands for.
    pub kind: StepKind,
    /// Attempts recorded.
    pub attempts: u32,
    /// The recorded output.
    pub output: Option<serde_json::Value>,
    /// The recorded error.
    pub error: Option<ErrorRecord>,
    /// The recorded error as stored, with the fields [`ErrorRecord`] does not hold (a failed
    /// child's `child_id`).
    pub error_json: Option<serde_json::Value>,
}

/// A fresh store as a case sees it: the scheduler under test and its [`Fixture`].
pub struct Harness {
    scheduler: DynScheduler,
    fixture: Box<dyn Fixture>,
}

impl Harness {
    /// Wraps a backend's scheduler and fixture.
    pub fn new(scheduler: DynScheduler, fixture: impl Fixture) -> Self {
        Harness {
            scheduler,
            fixture: Box::new(fixture),
        }
    }

    /// The scheduler under test.
    pub fn scheduler(&self) -> &DynScheduler {
        &self.scheduler
    }

    /// The clock and the read-only view.
    pub fn fixture(&self) -> &dyn Fixture {
        &*self.fixture
    }
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness").finish_non_exhaustive()
    }
}

/// Runs the whole suite against a backend: one `#[tokio::test]` per case, named after it.
///
/// `$backend` is an expression that makes the [`Backend`]; it is evaluated once per case.
/// The calling crate needs `tokio` with `macros` and `rt-multi-thread`.
#[macro_export]
macro_rules! suite {
    ($backend:expr) => {
        $crate::__for_each_case!($crate::__case_test, $backend);

        /// Every skipped case names a real case and gives a reason; the list is printed.
        #[test]
        fn conformance_skips_are_real_cases() {
            $crate::check_skips(&$backend);
        }
    };
}

/// Checks a backend's [`Backend::skips`]: each is a case of the suite, named once, with a
/// reason; prints them.
///
/// # Panics
/// On an unknown or repeated name, or an empty reason.
pub fn check_skips(backend: &impl Backend) {
    let names = cases::names();
    let mut seen = Vec::new();
    for (case, reason) in backend.skips() {
        assert!(
            names.contains(case),
            "skipped case {case:?} is not a case of the suite"
        );
        assert!(!seen.contains(case), "case {case:?} is skipped twice");
        assert!(
            !reason.trim().is_empty(),
            "skipped case {case:?} gives no reason"
        );
        seen.push(case);
        eprintln!("conformance: {case} skipped: {reason}");
    }
}

/// The reason `case` is skipped by `backend`, if it is.
#[doc(hidden)]
pub fn skip_reason(backend: &impl Backend, case: &str) -> Option<&'static str> {
    backend
        .skips()
        .iter()
        .find(|(name, _)| *name == case)
        .map(|(_, reason)| *reason)
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_test {
    ($backend:expr, $(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let backend = $backend;
            if let Some(reason) = $crate::skip_reason(&backend, stringify!($name)) {
                eprintln!("conformance: {} skipped: {reason}", stringify!($name));
                return;
            }
            $crate::cases::$name(&backend).await;
        }
    };
}
