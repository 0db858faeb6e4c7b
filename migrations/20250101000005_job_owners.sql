-- Jobs belong to the user who enqueued them, and clients name a job by an opaque id that
-- reveals neither how many jobs exist nor the order they came in. The bigint `id` stays the
-- queue's internal key.
ALTER TABLE jobs
    ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid(),
    -- NULL for jobs the system enqueues for itself (none of them is readable through the API).
    ADD COLUMN owner_id  uuid;

CREATE UNIQUE INDEX jobs_public_id_key ON jobs (public_id);

-- What pruning scans: finished jobs by the time they finished, oldest first, so a round
-- costs the rows it deletes rather than the table.
CREATE INDEX jobs_finished_at_idx ON jobs ((coalesce(completed_at, discarded_at)))
    WHERE state IN ('completed', 'discarded');

-- Pruning the outbox the same way.
CREATE INDEX outbox_emails_inserted_at_idx ON outbox_emails (inserted_at);
