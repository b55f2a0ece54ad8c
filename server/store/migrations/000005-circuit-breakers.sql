-- Circuit breakers, one row per task name that has tripped or is recovering,
-- shared by every server process on the database. Rows change only on state
-- transitions (not on every result), so they are never a hot spot.
create table circuit_breakers (
  task text primary key,
  -- 1 closed, 2 open, 3 half-open (pipewright.v1.CircuitState).
  state smallint not null check (state between 1 and 3),
  consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
  opened_at timestamptz,
  probe_at timestamptz,
  updated_at timestamptz not null default now()
);
