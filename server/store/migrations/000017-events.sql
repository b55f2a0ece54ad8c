-- Events and triggers (issue 16 item 5). Both per namespace.
--
-- triggers: one row per trigger. The trigger as the client sent it (pipeline,
-- run name, run timeout, filter) is kept as its protobuf bytes in `spec`: the
-- server only ever reads it whole, when an event of its name arrives. The
-- lookup that matters is "the unpaused triggers of this event name in this
-- namespace", hence the index.
create table triggers (
  id bigint generated always as identity primary key,
  namespace text not null,
  trigger_id text not null check (length(trigger_id) between 1 and 63),
  event_name text not null check (length(event_name) between 1 and 200),
  spec bytea not null,
  paused boolean not null default false,
  created_at timestamptz not null default now(),
  unique (namespace, trigger_id)
);
create index triggers_by_event on triggers (namespace, event_name) where not paused;

-- events: one row per published event, unique by (namespace, event_id): the
-- insert is the idempotency of PublishEvent. triggered_at stays null until
-- the runs of its triggers are started; `runs` then holds what they were
-- (JSON list of {trigger_id, run_id, error}), so a repeated publish answers
-- the same. Rows older than the retention are deleted (server/events/).
create table events (
  id bigint generated always as identity primary key,
  namespace text not null,
  event_id text not null check (length(event_id) between 1 and 128),
  name text not null check (length(name) between 1 and 200),
  payload bytea not null,
  published_at timestamptz not null default now(),
  triggered_at timestamptz,
  runs jsonb not null default '[]',
  unique (namespace, event_id)
);
-- ListEvents: newest first within a namespace (keyset paging on id).
create index events_by_namespace on events (namespace, id desc);
-- The sweeper's look for events whose triggering a dead process left undone: partial, so nearly empty.
create index events_untriggered on events (published_at) where triggered_at is null;
-- Retention deletes by age.
create index events_by_age on events (published_at);
