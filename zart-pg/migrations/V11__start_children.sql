-- Zart schema, version 11: children awaited together (zart_start_children, with zart_child_wait
-- shared with zart_start_child). Functions only: sql/zart.sql defines them, and this version
-- number is how a build that calls them knows they are installed (`zart migrate` applies the
-- functions file after the migrations).
-- Never edit this file once merged: add V12__... instead.
select 1;
