-- The dashboard's questions of a namespace's runs (issue 15): the newest runs
-- in a state (ListRuns filtered by state: keyset paging on created_at, id) and
-- how many runs are in each state, counted up to a cap (CountRuns), both walk
-- this index only as far as the page or the cap, however many runs are kept.
create index runs_namespace_state on runs (namespace, state, created_at desc, id desc);
