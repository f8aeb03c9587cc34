-- Zart schema, version 10: published state. TaskContext::set_state records a value a workflow
-- publishes as a step row of kind 'state' (named state:<name>, or state#<n>:<name> for the
-- n-th time in the execution); readers take the latest of each name.
-- Never edit this file once merged: add V11__... instead.
--
-- NOT VALID, as V6: every existing row passed the old check, a subset of this one.
alter table public.zart_steps drop constraint zart_steps_kind_check;
alter table public.zart_steps add constraint zart_steps_kind_check
    check (kind in ('step', 'sleep', 'event', 'child', 'patch', 'state')) not valid;
