-- Zart schema, version 6: versioning markers. TaskContext::patched records whether an
-- execution takes a patch's new code path as a step row of kind 'patch' (named patch:<id>).
-- Never edit this file once merged: add V7__... instead.
--
-- NOT VALID: every existing row passed the old check, a subset of this one, so there is
-- nothing to validate, and the migration does not scan zart_steps under its exclusive lock.
-- New and updated rows are checked as usual.
alter table public.zart_steps drop constraint zart_steps_kind_check;
alter table public.zart_steps add constraint zart_steps_kind_check
    check (kind in ('step', 'sleep', 'event', 'child', 'patch')) not valid;
