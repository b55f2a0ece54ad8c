-- Schedules (issue 16): a pipeline started on a cron schedule, per namespace.
-- The scheduler of every server process claims due rows (next_fire_at <= now,
-- not paused) with FOR UPDATE SKIP LOCKED, records their fires in
-- schedule_fires and moves next_fire_at on, in one short transaction.
create table schedules (
  id bigint generated always as identity primary key,
  namespace text not null,
  -- The client-chosen id, unique in its namespace.
  schedule_id text not null check (length(schedule_id) between 1 and 128),
  cron text not null check (length(cron) between 1 and 200),
  time_zone text not null check (length(time_zone) between 1 and 64),
  -- 1 skip, 2 allow, 3 cancel previous (pipewright.v1.ScheduleOverlapPolicy).
  overlap smallint not null check (overlap between 1 and 3),
  catchup_window_ms bigint not null check (catchup_window_ms >= 0),
  -- The template of each fire's SubmitRunRequest: the pipewright.v1.Pipeline message, run name and timeout.
  pipeline bytea not null,
  run_name text not null check (length(run_name) <= 200),
  run_timeout_ms bigint not null default 0 check (run_timeout_ms >= 0),
  paused boolean not null default false,
  -- Null while paused or when the cron has no future time.
  next_fire_at timestamptz,
  last_fire_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  unique (namespace, schedule_id)
);
-- The scheduler's claim and its timer (the earliest next fire): only the running schedules.
create index schedules_due on schedules (next_fire_at) where not paused and next_fire_at is not null;

-- One row per fire: recorded before its run is submitted, so that a fire
-- happens once whoever records it (insert ... on conflict do nothing), and a
-- fire whose submit never happened (kill -9 between the two) is found and
-- submitted by the next look. The newest 1,000 per schedule are kept.
create table schedule_fires (
  schedule_id bigint not null references schedules (id) on delete cascade,
  fire_at timestamptz not null,
  -- 1 pending (recorded, its run not yet submitted), 2 started, 3 skipped (pipewright.v1.ScheduleFireOutcome).
  outcome smallint not null check (outcome between 1 and 3),
  -- The request id its run is submitted with (derived from the schedule and fire_at, or a trigger's).
  request_id text not null check (length(request_id) between 1 and 200),
  run_uid uuid,
  reason text not null default '' check (length(reason) <= 1000),
  triggered boolean not null default false,
  -- CANCEL_PREVIOUS: the schedule's active runs are cancelled before the submit.
  cancel_previous boolean not null default false,
  -- When it was recorded, or last picked up again while pending (the retry's lease).
  touched_at timestamptz not null default now(),
  primary key (schedule_id, fire_at),
  unique (schedule_id, request_id),
  check ((outcome = 2) = (run_uid is not null))
);
-- Pending fires, for the retry of those a crash left behind.
create index schedule_fires_pending on schedule_fires (touched_at) where outcome = 1;
