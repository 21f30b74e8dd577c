-- Leases that keep one worker per job (one agent loop per pool) across replicas. The fence
-- grows on every change of holder, so a stale holder's late writes can be told apart.
CREATE TABLE worker_leases (
    name        TEXT        PRIMARY KEY,
    holder      TEXT        NOT NULL,
    fence       BIGINT      NOT NULL,
    acquired_at TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX worker_leases_expires_at_idx ON worker_leases (expires_at);
