-- The job queue shared by every node (Oban-like).
CREATE TYPE job_state AS ENUM (
    'available', 'scheduled', 'executing', 'retryable', 'completed', 'discarded'
);

CREATE TABLE jobs (
    id               bigserial   PRIMARY KEY,
    kind             text        NOT NULL,
    args             jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state            job_state   NOT NULL DEFAULT 'available',
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL DEFAULT 20 CHECK (max_attempts > 0),
    errors           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    -- The node that ran (or runs) the latest attempt.
    node             text,
    -- While executing: the node must renew this lease; once it lapses any node rescues the job.
    lease_expires_at timestamptz,
    scheduled_at     timestamptz NOT NULL DEFAULT now(),
    inserted_at      timestamptz NOT NULL DEFAULT now(),
    attempted_at     timestamptz,
    completed_at     timestamptz,
    discarded_at     timestamptz
);

-- What the fetch query scans: runnable jobs in time order.
CREATE INDEX jobs_runnable_idx ON jobs (scheduled_at, id)
    WHERE state IN ('available', 'scheduled', 'retryable');

-- What the rescuer scans: executing jobs by lease.
CREATE INDEX jobs_executing_lease_idx ON jobs (lease_expires_at)
    WHERE state = 'executing';

CREATE INDEX jobs_state_node_idx ON jobs (state, node);

-- Wake idle workers on every node as soon as jobs are inserted (polling stays as a fallback).
CREATE FUNCTION jobs_notify_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('jobs_inserted', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_inserted
    AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_inserted();
