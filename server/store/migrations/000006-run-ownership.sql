-- Several server processes share one database. Each active run is owned by
-- one process, which holds it in memory and is the only one writing its
-- events; another process that receives something for the run (a worker's
-- result, a cancel) puts it in the owner's inbox. When a process dies, the
-- others take over its runs.
alter table runs add column owner_id uuid;
create index runs_owner on runs (owner_id) where state <= 3;

create table run_inbox (
  id bigint generated always as identity primary key,
  run_id bigint not null references runs (id) on delete cascade,
  -- 2 a task result (step, attempt, body: a pipewright.v1.TaskResult, already
  -- fenced: its queue row was removed when it was put here); 3 cancel, 5 pause,
  -- 6 resume (body: the reason as UTF-8), as in run_events.kind.
  kind smallint not null check (kind in (2, 3, 5, 6)),
  step integer,
  attempt integer,
  body bytea,
  received_at timestamptz not null default now()
);
create index run_inbox_run on run_inbox (run_id);

-- Raised inside a batch statement when a run it writes is no longer owned by
-- the writing process (it was presumed dead and its runs taken over).
create function pw_check_owner(ok boolean) returns boolean
language plpgsql as $$
begin
  if not ok then
    raise exception 'pipewright batch check failed: a run is owned by another process' using errcode = 'PW002';
  end if;
  return true;
end
$$;
