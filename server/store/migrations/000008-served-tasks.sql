-- What each server process's workers serve, as a JSON array of [task, queue]
-- pairs, written with its heartbeat: any process can then say of a queued task
-- that no connected worker, anywhere, serves it (GetRun, WatchRun).
alter table server_processes add column serves jsonb not null default '[]';
