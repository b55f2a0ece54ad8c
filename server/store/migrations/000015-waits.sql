-- Wait steps (Step.wait): their inputs are logged like any other.
--   7 wake: time passed, every wait whose time had come ended or timed out (no body)
--   8 signal: RunService.SignalRun (body: a pipewright.v1.SignalRunRequest, name, payload and signal_id)
--   9 event: an event published in the run's namespace (body: the same message, the event id in signal_id)
-- A signal or event for a run another process owns goes through run_inbox with the same kinds.
alter table run_events drop constraint run_events_kind_check;
alter table run_events add constraint run_events_kind_check check (kind between 2 and 9);
alter table run_inbox drop constraint run_inbox_kind_check;
alter table run_inbox add constraint run_inbox_kind_check check (kind in (2, 3, 5, 6, 8, 9));

-- The wait steps waiting for an event now, written by the batch that begins
-- or ends the wait: a publisher finds the runs to tell in one indexed read,
-- whichever process owns them, and the event reaches them through their
-- owner's inbox, in the publisher's transaction (an event committed after a
-- wait began is never missed, even across a restart or a takeover).
create table run_event_waits (
  run_id bigint not null references runs (id) on delete cascade,
  step integer not null,
  namespace text not null,
  name text not null,
  primary key (run_id, step)
);
create index run_event_waits_by_name on run_event_waits (namespace, name);

-- Parked runs: a run whose only activity is waiting (a sleep, a signal, an
-- event) with nothing due soon leaves its owner's memory. `wake_at` is when
-- it must be back (its next wait's end or timeout, or its run deadline; null:
-- only a signal, an event or a control brings it back, through the inbox).
-- Its owner reads this index for the runs due.
alter table runs add column parked boolean not null default false;
alter table runs add column wake_at timestamptz;
create index runs_parked_wake on runs (owner_id, wake_at) where parked;
