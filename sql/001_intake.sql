-- Connections, the durable event log and its dedup index.
-- A connection's full document (secrets resolved) is sealed with AES-256-GCM
-- under secret_key_file; `config` holds the same document with secrets masked.

CREATE TABLE connections (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    timezone    text NOT NULL,
    config      jsonb NOT NULL,
    sealed      bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per acknowledged delivery. The unique index is the dedup record:
-- rows are kept at least event_retention_days (30 or more).
CREATE TABLE events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id bigint NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    source        text NOT NULL CHECK (source IN ('personio', 'moco')),
    event_type    text NOT NULL,
    subject       text,
    auth          text NOT NULL CHECK (auth IN ('token', 'hmac', 'standard')),
    dedup_key     bytea NOT NULL,
    headers       jsonb NOT NULL,
    body          text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'done', 'failed', 'dead')),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    note          text,
    updated_at    timestamptz NOT NULL DEFAULT now()
-- Statistics must follow fast growth: a table that doubled since its last ANALYZE
-- gets sequential scans planned for what should be index probes.
) WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05,
        autovacuum_vacuum_insert_scale_factor = 0.05);

CREATE UNIQUE INDEX events_dedup ON events (connection_id, dedup_key);
CREATE INDEX events_received ON events (received_at);
-- Only the rare outcomes an operator hunts for are indexed by status: a delivery
-- on the happy path (pending, running, done) adds no entry here, so the intake
-- and the workers write one index fewer per event. Listing by connection scans
-- events_received (there are few connections).
CREATE INDEX events_failed ON events (status, received_at) WHERE status IN ('failed', 'dead');

-- Every attempt at working an event, kept across replays.
CREATE TABLE event_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    job_id      bigint,
    attempt     integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('done', 'failed', 'dead', 'lease_lost', 'replayed')),
    error       text,
    instance    text
) WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05,
        autovacuum_vacuum_insert_scale_factor = 0.05);

CREATE INDEX event_attempts_event ON event_attempts (event_id, id);
