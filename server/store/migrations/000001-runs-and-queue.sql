-- Runs, their event log, and the task queue.
--
-- A run is persisted as its submitted pipeline (spec) plus an append-only log
-- of the events applied to it (run_events). The orchestrator rebuilds a run
-- by replaying that log through the pure core, so nothing else about a run's
-- progress has to be written per event. The task queue is the narrow, hot
-- table: one row per task attempt that is waiting for or held by a worker.

create table runs (
  id bigint generated always as identity primary key,
  uid uuid not null unique,
  -- Client idempotency key; null when the client gave none.
  request_id text unique check (length(request_id) between 1 and 200),
  -- SHA-256 of the submission without its request_id: a reused key with a
  -- different submission is refused (ALREADY_EXISTS).
  request_hash bytea,
  name text not null default '' check (length(name) <= 200),
  -- pipewright.v1.RunState: 1 running, 2 paused, 3 cancelling, 4 succeeded, 5 failed, 6 cancelled.
  state smallint not null check (state between 1 and 6),
  -- The submitted pipewright.v1.Pipeline message.
  spec bytea not null,
  created_at timestamptz not null default now(),
  -- Run timeout: the run fails with pipewright.Timeout if not finished by then.
  deadline timestamptz,
  finished_at timestamptz,
  -- pipewright.v1.Outcome and the final state (a pipewright.v1.Value), once finished.
  outcome bytea,
  final_state bytea,
  task_count integer not null default 0 check (task_count >= 0),
  check ((state >= 4) = (finished_at is not null))
);

create index runs_by_creation on runs (created_at desc, id desc);
create index runs_by_name on runs (name, created_at desc, id desc);
create index runs_active on runs (id) where state <= 3;

-- The events applied to a run after its start, in order. kind: 2 task
-- finished (body: a pipewright.v1.TaskResult), 3 cancel (body: the reason as
-- UTF-8), 4 run timeout, 5 pause, 6 resume.
create table run_events (
  run_id bigint not null references runs (id) on delete cascade,
  seq integer not null check (seq >= 1),
  kind smallint not null check (kind between 2 and 6),
  at timestamptz not null,
  step integer,
  body bytea,
  primary key (run_id, seq),
  check ((kind = 2) = (step is not null))
);

-- Server processes sharing this database, with their last sign of life.
create table server_processes (
  id uuid primary key,
  address text not null,
  started_at timestamptz not null default now(),
  heartbeat_at timestamptz not null default now()
);

-- One row per task step that is waiting for a worker or held by one.
create table task_queue (
  run_id bigint not null references runs (id) on delete cascade,
  step integer not null,
  -- The fencing token: bumped by every claim. A result is applied only if it
  -- names the current attempt.
  attempt integer not null default 0 check (attempt >= 0),
  task text not null,
  queue text not null,
  -- 0 ready, 1 held by a worker, 2 held back (run paused).
  status smallint not null default 0 check (status between 0 and 2),
  -- Not handed out before this time (retry backoff).
  available_at timestamptz not null default now(),
  -- Set while held by a worker: which process and session, and until when.
  process_id uuid,
  worker_id text,
  claimed_at timestamptz,
  lease_until timestamptz,
  -- Times the attempt was re-queued because its worker or process went away.
  lost_count integer not null default 0,
  -- The pipewright.v1.TaskAssignment to send, without its key.
  assignment bytea not null,
  primary key (run_id, step),
  check ((status = 1) = (worker_id is not null and lease_until is not null))
);

create index task_queue_ready on task_queue (queue, task, available_at) where status = 0;
create index task_queue_held on task_queue (worker_id) where status = 1;
