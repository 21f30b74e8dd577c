-- The durable record the Redis policy state is rebuilt from (pmm-state bootstrap): every
-- breaker trip, resume, pause and cooldown names the chain as the Redis keys do (its short
-- name, not only the id) and the block it was decided at.
ALTER TABLE policy_events
    ADD COLUMN chain        TEXT,
    ADD COLUMN block_number BIGINT CHECK (block_number >= 0);

CREATE INDEX policy_events_state_idx ON policy_events (chain, pool, id);
