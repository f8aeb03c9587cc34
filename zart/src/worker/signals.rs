//! Graceful shutdown: SIGINT/SIGTERM turned into a shutdown request, and the shutdown itself.
//!
//! Once asked to stop, the worker claims nothing more, lets running executions finish for up to
//! `shutdown_timeout`, then aborts the rest and releases their leases so another worker takes
//! them at once (if the release fails, they are taken over when the leases expire).

use std::time::Instant;

use super::{lock, Core, Running, ShutdownHandle};
use crate::scheduler::{Lease, ReleaseTasksParams};

pub(super) fn spawn_signal_listener(handle: ShutdownHandle) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("signal received; shutting down gracefully");
        handle.shutdown();
    });
}

impl Core {
    /// Stops claiming, lets runs finish up to the timeout, then aborts and releases the rest.
    pub(super) async fn shut_down(&mut self) {
        let deadline = Instant::now() + self.config.shutdown_timeout;
        let pending = lock(&self.running).len();
        if pending > 0 {
            tracing::info!(
                running = pending,
                timeout_ms = self.config.shutdown_timeout.as_millis() as u64,
                "zart worker shutting down; waiting for running executions"
            );
        }
        while !lock(&self.running).is_empty() {
            tokio::select! {
                Some(ended) = self.ended.1.recv() => {
                    lock(&self.running).remove(&ended.execution_id);
                }
                _ = tokio::time::sleep_until(deadline.into()) => break,
            }
        }
        let leftover: Vec<Running> = lock(&self.running).drain().map(|(_, r)| r).collect();
        if leftover.is_empty() {
            return;
        }
        for run in &leftover {
            run.abort.abort();
        }
        let leases: Vec<Lease> = leftover.into_iter().map(|r| r.lease).collect();
        let count = leases.len();
        match self
            .scheduler
            .release_tasks(ReleaseTasksParams {
                worker_id: self.worker_id.clone(),
                queue: self.config.queue.clone(),
                leases,
            })
            .await
        {
            Ok(released) => tracing::info!(
                released,
                "released leases of executions still running at shutdown"
            ),
            Err(err) => tracing::warn!(
                count,
                error = %crate::error::error_chain(&err),
                "could not release leases at shutdown; they will be taken over when they expire"
            ),
        }
    }
}
