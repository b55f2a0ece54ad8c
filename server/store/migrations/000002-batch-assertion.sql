-- pw_check raises when a batch's optimistic expectation does not hold (a
-- result turned out stale, a request_id was taken meanwhile), aborting the
-- whole single-statement batch so the engine can redo it the careful way.
create function pw_check(ok boolean, what text) returns boolean
language plpgsql as $$
begin
  if not ok then
    raise exception 'pipewright batch check failed: %', what using errcode = 'PW001';
  end if;
  return true;
end
$$;
