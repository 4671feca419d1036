-- Smart ID Messaging reference service: full schema of release 1.0.0.
-- Run on an empty database for a new 1.0.0 install. The migration tool records the
-- version in flyway_schema_history; this file does not touch that table.

CREATE TABLE hermod_command (
    id              uuid         PRIMARY KEY,
    client_id       varchar(64)  NOT NULL,
    client_group    varchar(128) NOT NULL,
    command_type    varchar(16)  NOT NULL,
    -- one-time reference handed to the device; the only secret it needs
    reference       varchar(64)  NOT NULL,
    nonce           varchar(128) NOT NULL,
    userid          varchar(256) NOT NULL,
    response_format varchar(8)   NOT NULL,
    payload         text         NOT NULL,
    state           varchar(16)  NOT NULL DEFAULT 'pending',
    timeout_seconds integer      NOT NULL,
    created_at      timestamptz  NOT NULL DEFAULT now(),
    -- fetch deadline while pending, response deadline once fetched
    expires_at      timestamptz  NOT NULL,
    fetched_at      timestamptz,
    answered_at     timestamptz,
    CONSTRAINT hermod_command_reference_key UNIQUE (reference),
    CONSTRAINT hermod_command_state_check CHECK (state IN ('pending', 'fetched', 'answered', 'expired'))
);

-- the expiry sweeper only looks at open commands
CREATE INDEX hermod_command_open_expiry ON hermod_command (expires_at)
    WHERE state IN ('pending', 'fetched');

-- device keys registered by provisioning responses, shared by clients of one group
CREATE TABLE hermod_device_key (
    client_group  varchar(128) NOT NULL,
    userid        varchar(256) NOT NULL,
    jwk           text         NOT NULL,
    command_id    uuid         NOT NULL,
    registered_at timestamptz  NOT NULL DEFAULT now(),
    PRIMARY KEY (client_group, userid)
);

-- one callback per command (response or timeout), delivered at least once
CREATE TABLE hermod_callback (
    id              uuid        PRIMARY KEY,
    command_id      uuid        NOT NULL REFERENCES hermod_command (id) ON DELETE CASCADE,
    client_id       varchar(64) NOT NULL,
    callback_type   varchar(16) NOT NULL,
    body            text        NOT NULL,
    state           varchar(16) NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_owner     varchar(64),
    lease_until     timestamptz,
    delivered_at    timestamptz,
    last_error      varchar(500),
    CONSTRAINT hermod_callback_command_key UNIQUE (command_id),
    CONSTRAINT hermod_callback_state_check CHECK (state IN ('pending', 'delivered', 'failed'))
);

CREATE INDEX hermod_callback_due ON hermod_callback (next_attempt_at)
    WHERE state = 'pending';
