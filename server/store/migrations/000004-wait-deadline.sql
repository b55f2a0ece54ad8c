-- A task waiting for a worker longer than its wait timeout fails with
-- pipewright.Timeout: the deadline of each ready row, and an index to find
-- the expired ones without scanning the queue.
alter table task_queue add column wait_deadline timestamptz;
create index task_queue_wait_deadline on task_queue (wait_deadline) where status = 0 and wait_deadline is not null;
