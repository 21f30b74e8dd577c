-- Normalized pool state as read at one block; decisions point at these by state_hash.
CREATE TABLE pool_snapshots (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    taken_at     TIMESTAMPTZ NOT NULL,
    chain_id     BIGINT      NOT NULL CHECK (chain_id >= 0),
    pool         TEXT        NOT NULL,
    block_number BIGINT      NOT NULL CHECK (block_number >= 0),
    block_hash   TEXT,
    state_hash   TEXT        NOT NULL,
    state        JSONB       NOT NULL,
    -- A retried write of the same read is a no-op, not a second row.
    CONSTRAINT pool_snapshots_unique_read UNIQUE (chain_id, pool, block_number, state_hash)
);

CREATE INDEX pool_snapshots_latest_idx ON pool_snapshots (chain_id, pool, block_number DESC);
CREATE INDEX pool_snapshots_state_hash_idx ON pool_snapshots (state_hash);
