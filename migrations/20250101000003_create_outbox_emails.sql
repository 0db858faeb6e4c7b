-- Emails waiting to be sent. Written by the "welcome_email" job; unique per job so a job
-- that runs again after a rescue does not write a second email.
CREATE TABLE outbox_emails (
    id          bigserial   PRIMARY KEY,
    job_id      bigint      NOT NULL UNIQUE,
    user_id     uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_address  text        NOT NULL,
    subject     text        NOT NULL,
    body        text        NOT NULL,
    inserted_at timestamptz NOT NULL DEFAULT now()
);
