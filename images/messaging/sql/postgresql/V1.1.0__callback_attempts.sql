-- 1.0.0 -> 1.1.0: record every callback delivery attempt, and the last HTTP status.
-- Existing rows keep their data; last_http_status stays NULL for callbacks handled by 1.0.0.

ALTER TABLE hermod_callback ADD COLUMN last_http_status integer;

CREATE TABLE hermod_callback_attempt (
    id           bigserial   PRIMARY KEY,
    callback_id  uuid        NOT NULL REFERENCES hermod_callback (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    node         varchar(64) NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    duration_ms  integer     NOT NULL,
    http_status  integer,
    error        varchar(500)
);

CREATE INDEX hermod_callback_attempt_callback ON hermod_callback_attempt (callback_id);
