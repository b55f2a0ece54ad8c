-- A run's trace context: the W3C `traceparent` (and `tracestate`) of the
-- server's span of the run, written with the run when it is traced (the client
-- sent a trace context with the submit, or the server records traces), null
-- otherwise. The span itself lives in the memory of the process that accepted
-- the run; a process that reloads the run (after a restart, or adopting it from
-- a dead process) parents the spans of the attempts it dispatches on this, so
-- they stay in the run's trace. Written once, never updated: no index, no cost
-- to the updates of a run's state.
alter table runs add column traceparent text, add column tracestate text;
