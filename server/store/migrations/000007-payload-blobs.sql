-- Big payloads, stored once per run and shared by the queue rows that carry
-- them. A group of 64 branches given an 8 MB argument wrote 64 assignments of
-- 8 MB each (512 MB: the commit failed, and was retried forever); now each
-- assignment holds a 32-byte reference (its sha256) and the bytes are here
-- once. Rows go with their run.
create table payload_blobs (
  run_id bigint not null references runs (id) on delete cascade,
  hash bytea not null check (length(hash) = 32),
  data bytea not null,
  primary key (run_id, hash)
);
