-- Failed-login counters for rate limiting when no Redis is configured: one fixed window per key
-- (email + client IP), shared by every node.
CREATE TABLE login_failures (
    key            text        PRIMARY KEY,
    failures       integer     NOT NULL,
    window_ends_at timestamptz NOT NULL
);

CREATE INDEX login_failures_window_ends_at_idx ON login_failures (window_ends_at);
