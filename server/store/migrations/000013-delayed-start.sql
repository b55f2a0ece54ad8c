-- Delayed start (issue 16): a run submitted with a start time or delay keeps
-- it here; none of its tasks is dispatched before (their queue rows are
-- available from then), and a run reloaded after a restart starts its machine
-- at that time again. Null: it started when it was created.
alter table runs add column start_at timestamptz;
