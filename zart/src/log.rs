//! Logging that stays quiet while a workflow replays: [`crate::durable_info!`] and its
//! siblings emit a `tracing` event only when [`crate::TaskContext::is_replaying`] is false, so
//! a line in workflow code is logged once per real run, not again on every resume.
//!
//! They take the context first, then anything `tracing::info!` (or `trace!`, `debug!`, `warn!`,
//! `error!`) takes: fields, a message, format arguments. The event is emitted inside the
//! worker's `zart.task.run` span (an `INFO` span with `execution.id` and `task.name`), so a
//! subscriber that records that span ties the line to its execution.

/// Emits a `tracing` event at `$level` unless `$ctx` is replaying; the macros below use it.
#[doc(hidden)]
#[macro_export]
macro_rules! __durable_event {
    ($level:ident, $ctx:expr, $($arg:tt)+) => {
        if !$ctx.is_replaying() {
            $crate::__private::tracing::$level!($($arg)+);
        }
    };
}

/// Logs at `TRACE` like `tracing::trace!`, unless the workflow is replaying.
///
/// See [`crate::durable_info!`].
#[macro_export]
macro_rules! durable_trace {
    ($ctx:expr, $($arg:tt)+) => { $crate::__durable_event!(trace, $ctx, $($arg)+) };
}

/// Logs at `DEBUG` like `tracing::debug!`, unless the workflow is replaying.
///
/// See [`crate::durable_info!`].
#[macro_export]
macro_rules! durable_debug {
    ($ctx:expr, $($arg:tt)+) => { $crate::__durable_event!(debug, $ctx, $($arg)+) };
}

/// Logs at `INFO` like `tracing::info!`, unless the workflow is replaying.
///
/// The first argument is the [`crate::TaskContext`] (or a `&mut` to it); the rest is what
/// `tracing::info!` takes. Nothing is logged while [`crate::TaskContext::is_replaying`] is
/// true, so the line appears once per real run of that part of the workflow, not again each
/// time a resumed execution re-runs the code before its last recorded step.
///
/// # Examples
/// ```no_run
/// # use zart::{Scheduler, TaskContext, TaskError};
/// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
/// let customer: String = ctx
///     .step("create-customer", || async { Ok::<_, std::io::Error>("cus_1".to_owned()) })
///     .await?;
/// zart::durable_info!(ctx, customer = %customer, "billing is set up");
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! durable_info {
    ($ctx:expr, $($arg:tt)+) => { $crate::__durable_event!(info, $ctx, $($arg)+) };
}

/// Logs at `WARN` like `tracing::warn!`, unless the workflow is replaying.
///
/// See [`crate::durable_info!`].
#[macro_export]
macro_rules! durable_warn {
    ($ctx:expr, $($arg:tt)+) => { $crate::__durable_event!(warn, $ctx, $($arg)+) };
}

/// Logs at `ERROR` like `tracing::error!`, unless the workflow is replaying.
///
/// See [`crate::durable_info!`].
#[macro_export]
macro_rules! durable_error {
    ($ctx:expr, $($arg:tt)+) => { $crate::__durable_event!(error, $ctx, $($arg)+) };
}
