-- Retention: finished runs older than --retention-hours are deleted by any
-- server process, oldest first, a batch at a time (run-store.ts,
-- deleteFinishedRunsBefore). This index finds them without scanning the
-- active or recent runs; a partial index on finished runs only, so the hot
-- updates of active runs do not maintain it until the run finishes.
create index runs_finished on runs (finished_at, id) where state >= 4;
