//! In-process hand-off: a start made through a scheduler that a local, idle [`Worker`] also
//! uses can lease the new execution in the start's own statement and give it straight to that
//! worker, with no notification and no claim round trip between the start's commit and the
//! handler (issue #20; docs/architecture.md, "In-process hand-off").
//!
//! A worker offers its free slots while it is parked waiting for work (never while it claims,
//! so the two cannot overfill it) and takes back what no start used when it wakes. A start
//! reserves one offered slot, asks the backend to start and lease the execution
//! ([`Scheduler::start_handed`]), and sends the worker exactly one [`Handed`] per reservation:
//! the leased task, or `Unused` when nothing was leased (the id existed, the queue has limits, a
//! tenant the worker cannot serve), in which case the start wakes workers as it always does.
//! Only a backend that can lease in the start's transaction has a [`Handoffs`] registry
//! ([`Scheduler::handoffs`]); elsewhere nothing changes.
//!
//! [`Worker`]: crate::Worker
//! [`Scheduler::start_handed`]: crate::Scheduler::start_handed
//! [`Scheduler::handoffs`]: crate::Scheduler::handoffs

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::scheduler::ClaimedTask;

/// What a start sends the worker whose slot it reserved: one message per reservation.
#[derive(Debug)]
pub enum Handed {
    /// The execution, leased by the worker's id in the start's transaction.
    Task(Box<ClaimedTask>),
    /// The reservation went unused: nothing was leased.
    Unused,
}

/// The lease a start takes for a worker.
#[derive(Debug, Clone)]
pub struct HandoffClaim {
    /// The worker's id (the lease owner).
    pub worker_id: String,
    /// Its lease duration.
    pub lease: Duration,
}

/// The local workers' offers of free slots, on one scheduler.
#[derive(Debug, Default)]
pub struct Handoffs {
    offers: Mutex<Vec<Arc<Offer>>>,
}

/// One worker's offer.
#[derive(Debug)]
pub(crate) struct Offer {
    queue: String,
    task_names: Vec<String>,
    claim: HandoffClaim,
    /// Slots a start may still reserve (0 while the worker is not parked).
    spare: AtomicUsize,
    tx: mpsc::UnboundedSender<Handed>,
}

/// A reserved slot: the start owes its worker one [`Handed`].
#[derive(Debug)]
pub struct Reservation {
    offer: Arc<Offer>,
    sent: bool,
}

impl Handoffs {
    /// Registers a worker's offer (no spare slots yet); it is withdrawn when the returned
    /// [`OfferHandle`] drops.
    pub(crate) fn offer(
        self: &Arc<Self>,
        queue: &str,
        task_names: Vec<String>,
        claim: HandoffClaim,
    ) -> (OfferHandle, mpsc::UnboundedReceiver<Handed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let offer = Arc::new(Offer {
            queue: queue.to_owned(),
            task_names,
            claim,
            spare: AtomicUsize::new(0),
            tx,
        });
        self.lock().push(offer.clone());
        let handle = OfferHandle {
            handoffs: self.clone(),
            offer,
        };
        (handle, rx)
    }

    /// Reserves a spare slot of a worker that runs `task_name` on `queue`, if one has one.
    pub fn reserve(&self, queue: &str, task_name: &str) -> Option<Reservation> {
        let offers = self.lock();
        offers
            .iter()
            .filter(|o| o.queue == queue && o.task_names.iter().any(|n| n == task_name))
            .find(|o| {
                o.spare
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                    .is_ok()
            })
            .map(|offer| Reservation {
                offer: offer.clone(),
                sent: false,
            })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Offer>>> {
        self.offers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Reservation {
    /// The lease to take for the worker.
    pub fn claim(&self) -> &HandoffClaim {
        &self.offer.claim
    }

    /// Gives the worker its task. Returns the task back when the worker has stopped (its
    /// receiver is gone), so the caller can release the lease.
    pub fn hand(mut self, task: ClaimedTask) -> Result<(), Box<ClaimedTask>> {
        self.sent = true;
        self.offer
            .tx
            .send(Handed::Task(Box::new(task)))
            .map_err(|e| match e.0 {
                Handed::Task(task) => task,
                Handed::Unused => unreachable!("sent a task"),
            })
    }
}

impl Drop for Reservation {
    /// A reservation given up (nothing leased, the start failed, or its future was dropped)
    /// tells the worker, which counts the slot free again.
    fn drop(&mut self) {
        if !self.sent {
            let _ = self.offer.tx.send(Handed::Unused);
        }
    }
}

/// A worker's side of its offer. Dropping it withdraws the offer.
#[derive(Debug)]
pub(crate) struct OfferHandle {
    handoffs: Arc<Handoffs>,
    offer: Arc<Offer>,
}

impl OfferHandle {
    /// Offers `free` slots while the worker is parked.
    pub(crate) fn open(&self, free: usize) {
        self.offer.spare.store(free, Ordering::Release);
    }

    /// Takes back the slots no start reserved; returns how many were reserved since
    /// [`OfferHandle::open`] offered `offered`.
    pub(crate) fn close(&self, offered: usize) -> usize {
        offered.saturating_sub(self.offer.spare.swap(0, Ordering::AcqRel))
    }
}

impl Drop for OfferHandle {
    fn drop(&mut self) {
        self.offer.spare.store(0, Ordering::Release);
        self.handoffs
            .lock()
            .retain(|o| !Arc::ptr_eq(o, &self.offer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> HandoffClaim {
        HandoffClaim {
            worker_id: "w".to_owned(),
            lease: Duration::from_secs(30),
        }
    }

    #[test]
    fn only_offered_slots_of_a_matching_worker_are_reserved_and_each_is_answered_once() {
        let handoffs = Arc::new(Handoffs::default());
        let (handle, mut rx) = handoffs.offer("q", vec!["a".to_owned()], claim());
        assert!(handoffs.reserve("q", "a").is_none(), "nothing offered yet");
        handle.open(2);
        assert!(handoffs.reserve("q", "b").is_none(), "another task");
        assert!(handoffs.reserve("other", "a").is_none(), "another queue");
        let first = handoffs.reserve("q", "a").unwrap();
        let second = handoffs.reserve("q", "a").unwrap();
        assert!(handoffs.reserve("q", "a").is_none(), "both slots taken");
        assert_eq!(handle.close(2), 2);
        drop(first);
        assert!(matches!(rx.try_recv(), Ok(Handed::Unused)));
        drop(second);
        assert!(matches!(rx.try_recv(), Ok(Handed::Unused)));
        assert!(rx.try_recv().is_err(), "one message per reservation");

        handle.open(3);
        let _kept = handoffs.reserve("q", "a").unwrap();
        assert_eq!(handle.close(3), 1, "two slots taken back unreserved");
        assert!(handoffs.reserve("q", "a").is_none(), "closed");
        drop(handle);
        assert!(handoffs.lock().is_empty(), "withdrawn");
    }
}
