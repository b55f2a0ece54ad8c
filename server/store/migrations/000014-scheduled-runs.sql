-- The runs whose delayed start is still ahead, per namespace (ListRuns with
-- scheduled set, CountRuns' scheduled count): partial, so the runs that
-- started at once (nearly all) are not in it.
create index runs_scheduled on runs (namespace, start_at) where start_at is not null;
