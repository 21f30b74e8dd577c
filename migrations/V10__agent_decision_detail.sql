-- What a decision needs beyond V2 to be replayed and explained step by step: the block the state
-- was read at, the exact prompt (by hash), the model's raw text and why it did or did not parse,
-- the sampling settings, the pool's risk report, each step's latency, and which worker (and lease
-- fence) decided. Nullable: a tick that failed early has none of the later steps.
ALTER TABLE agent_decisions
    ADD COLUMN block_number BIGINT CHECK (block_number >= 0),
    ADD COLUMN prompt_hash  TEXT,
    ADD COLUMN model_digest TEXT,
    ADD COLUMN seed         BIGINT CHECK (seed >= 0),
    ADD COLUMN temperature  DOUBLE PRECISION,
    ADD COLUMN raw_output   TEXT,
    ADD COLUMN parse_error  TEXT,
    ADD COLUMN risk         JSONB,
    ADD COLUMN latencies_ms JSONB,
    ADD COLUMN worker       TEXT,
    ADD COLUMN lease_fence  BIGINT CHECK (lease_fence >= 0);

-- One decision per pool per tick, whichever worker made it: a second one is a lease failure and
-- is refused here rather than trusted to the workers.
CREATE UNIQUE INDEX agent_decisions_pool_tick_idx ON agent_decisions (chain_id, pool, tick);
