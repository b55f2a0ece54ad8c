-- Namespaces (issue 14): each run belongs to one; "default" is what every run
-- before them was in. A request_id is unique within its namespace: two tenants
-- may use the same key without seeing each other's run. Queue rows carry their
-- namespace in their queue key (server/core/queue-keys.ts), so task_queue is
-- unchanged. A constant default adds the column without rewriting the table.
alter table runs add column namespace text not null default 'default';
alter table runs drop constraint runs_request_id_key;
create unique index runs_request_id on runs (namespace, request_id);
-- ListRuns of one namespace, newest first (keyset paging on created_at, id).
create index runs_namespace_by_creation on runs (namespace, created_at desc, id desc);
