-- A stream's version, moved on by each update, which is made only over the version it was read
-- at (updated_at, to the millisecond, could not tell two updates apart).
ALTER TABLE signal_streams ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
