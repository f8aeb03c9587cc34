//! The cases of the suite, one async function each, grouped by behaviour. Each takes the
//! [`crate::Backend`] under test, makes a fresh store, and fails by panicking.
//!
//! [`crate::suite!`] turns every case listed in `__for_each_case!` into a test; a case added
//! here must be listed there (and in docs/backends.md).

mod cancel;
mod children;
mod claims;
mod deadlines;
mod events;
mod history;
mod leases;
mod limits;
mod replay;
mod retention;
mod retries;
mod retry;
mod schedules;
mod sleeps;
mod start;
mod start_keys;
mod tx;
mod versioning;
mod wait;

pub use cancel::*;
pub use children::*;
pub use claims::*;
pub use deadlines::*;
pub use events::*;
pub use history::*;
pub use leases::*;
pub use limits::*;
pub use replay::*;
pub use retention::*;
pub use retries::*;
pub use retry::*;
pub use schedules::*;
pub use sleeps::*;
pub use start::*;
pub use start_keys::*;
pub use tx::*;
pub use versioning::*;
pub use wait::*;

/// Calls `$m!($backend, case)` for every case of the suite, in the order of docs/backends.md.
#[doc(hidden)]
#[macro_export]
macro_rules! __for_each_case {
    ($m:path, $backend:expr) => {
        $crate::__for_each_case!(@each $m, $backend;
            // start
            start_is_idempotent,
            start_with_another_input_is_a_conflict,
            start_with_another_task_is_a_conflict,
            start_of_a_finished_execution_returns_it,
            a_delayed_start_runs_at_its_time,
            a_dedup_key_returns_the_first_execution_within_its_window,
            a_debounce_key_runs_the_last_input_once_quiet,
            // claims
            claims_take_only_due_tasks_of_the_names_asked_for,
            a_claim_returns_the_recorded_steps_for_replay,
            a_final_step_result_is_recorded_once,
            concurrent_writes_each_get_their_own_answer,
            a_step_transaction_records_its_step_only_when_it_commits,
            next_run_at_reports_the_earliest_due_task,
            // priorities and limits
            higher_priorities_are_claimed_first_fifo_within_one,
            a_low_priority_is_not_starved_by_a_saturated_queue,
            a_concurrency_limit_holds_claims_back_until_a_run_ends,
            a_rate_limit_lets_runs_start_per_interval,
            per_key_limits_pass_over_a_busy_key,
            queue_limits_are_set_listed_and_removed,
            // replay
            replay_skips_recorded_steps,
            a_run_whose_lease_expired_is_resumed_without_rerunning_steps,
            replay_that_meets_another_step_fails_with_non_determinism,
            a_step_name_used_twice_fails_the_execution,
            is_replaying_is_true_until_the_last_recorded_step,
            // leases
            a_stale_lease_writes_nothing,
            a_released_lease_writes_nothing_and_the_task_is_due_at_once,
            a_heartbeat_keeps_the_lease,
            the_recovery_limit_fails_a_poison_execution,
            // retries and timeouts
            step_with_retry_retries_until_it_succeeds,
            retries_exhausted_fail_the_execution,
            an_application_error_is_recorded_with_its_kind_and_details,
            a_durable_backoff_suspends_until_the_clock_passes_it,
            a_step_past_its_timeout_fails_with_kind_timeout,
            a_timed_out_attempt_is_retried,
            // sleeps
            a_sleep_suspends_until_the_clock_passes_it,
            sleep_until_a_past_time_does_not_suspend,
            sleep_until_a_future_time_suspends_until_then,
            // events
            an_event_sent_before_the_wait_is_delivered,
            an_event_sent_during_the_wait_wakes_the_execution,
            an_event_wait_times_out,
            an_event_sent_after_the_timeout_does_not_count,
            the_oldest_of_two_events_is_delivered_first,
            an_event_name_is_a_channel_in_order_none_lost_none_twice,
            unknown_executions_are_not_found,
            // children and parallel steps
            a_child_output_is_returned_to_the_waiting_parent,
            a_detached_child_runs_on_its_own,
            a_failed_child_fails_the_parent_step,
            a_child_id_taken_by_another_execution_fails_the_parent,
            wait_all_runs_every_step_once_in_order,
            wait_all_after_a_crash_runs_only_the_unfinished_steps,
            wait_all_runs_children_together_and_returns_their_results_in_order,
            start_children_waits_for_the_first_unfinished_child_in_order,
            // cancel
            cancel_ends_a_sleeping_execution_at_once,
            cancel_cascades_to_children,
            cancel_refuses_every_write_of_a_claimed_run,
            cancelling_a_finished_execution_changes_nothing,
            a_cancelled_child_fails_the_waiting_parent_step,
            // deadlines
            a_running_execution_past_its_deadline_fails,
            a_deadline_cuts_a_sleep_short,
            // wait
            wait_wakes_when_the_execution_finishes,
            wait_times_out_on_an_unfinished_execution,
            the_client_waits_for_several_executions_at_once,
            published_state_is_readable_while_the_execution_runs,
            // retention
            prune_deletes_only_finished_executions_past_their_age,
            prune_refuses_bad_input,
            // retry
            retry_reruns_a_failed_execution_from_its_failed_step,
            retry_revives_the_failed_child_with_its_parent,
            retry_refuses_what_is_not_failed_and_fences_old_leases,
            // versioning
            patched_keeps_old_executions_on_their_path_and_new_ones_on_the_new,
            // schedules
            a_schedule_fires_once_per_fire_time,
            schedule_overlap_and_catch_up_policies_hold,
            schedules_are_declared_paused_resumed_and_deleted,
            // random histories
            random_histories_hold_against_the_model,
        );
    };
    (@each $m:path, $backend:expr; $($name:ident,)*) => {
        $( $m! { $backend, $name } )*
    };
}

/// The names of every case, in the order the suite runs them.
pub fn names() -> Vec<&'static str> {
    let mut names = Vec::new();
    macro_rules! push {
        ($names:expr, $name:ident) => {
            $names.push(stringify!($name));
        };
    }
    crate::__for_each_case!(push, names);
    names
}

#[cfg(test)]
mod tests {
    use crate::{check_skips, Backend, Harness};

    struct Skips(&'static [(&'static str, &'static str)]);

    #[async_trait::async_trait]
    impl Backend for Skips {
        async fn fresh(&self) -> Harness {
            unreachable!("only the skip list is read")
        }
        fn skips(&self) -> &'static [(&'static str, &'static str)] {
            self.0
        }
    }

    #[test]
    fn a_skip_names_a_case_with_a_reason() {
        check_skips(&Skips(&[(
            "wait_times_out_on_an_unfinished_execution",
            "no clock",
        )]));
    }

    #[test]
    #[should_panic(expected = "is not a case of the suite")]
    fn a_skip_of_an_unknown_case_is_refused() {
        check_skips(&Skips(&[("wait_times_out", "a typo")]));
    }

    #[test]
    #[should_panic(expected = "gives no reason")]
    fn a_skip_without_a_reason_is_refused() {
        check_skips(&Skips(&[(
            "wait_times_out_on_an_unfinished_execution",
            " ",
        )]));
    }

    /// docs/backends.md lists exactly the cases of the suite, so the page cannot go stale.
    #[test]
    fn docs_backends_lists_every_case() {
        let page =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/backends.md"))
                .unwrap();
        let listed: Vec<&str> = page
            .lines()
            .filter_map(|l| l.strip_prefix('|'))
            .filter_map(|l| l.split('|').nth(1))
            .filter_map(|cell| cell.trim().strip_prefix('`')?.strip_suffix('`'))
            .collect();
        assert_eq!(listed, super::names(), "docs/backends.md's table of cases");
    }
}
