-- Reconciliation runs (DESIGN.md §1, §7): one row per run of a connection's nightly or
-- on-demand reconciliation, and per operator approval of what a run's circuit breaker
-- held. Findings point at their run through findings.run_id (sql/005).
--
-- * One run per connection at a time, across instances: a run is inserted as 'running'
--   and the partial unique index refuses a second one. Its owner renews lease_until
--   every few seconds (a heartbeat on its own connection); a run whose lease lapsed
--   (kill -9, lost host) is marked 'failed' by whoever looks next (a new run, a report).
-- * employees: what Personio returned, the baseline of the breaker's 80 % rule for the
--   next run; linked_users and planned_deactivations: the breaker's other inputs.
-- * counts: findings per kind, written when the run ends, for reports and the chart.

CREATE TABLE runs (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id         bigint NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    kind                  text NOT NULL DEFAULT 'reconcile' CHECK (kind IN ('reconcile', 'approval')),
    dry_run               boolean NOT NULL DEFAULT false,
    status                text NOT NULL DEFAULT 'running'
                          CHECK (status IN ('running', 'done', 'held', 'failed')),
    trigger               text NOT NULL,          -- 'schedule', 'operator', 'approval'
    job_id                bigint,                 -- the scheduled job that ran it
    approves_run_id       bigint REFERENCES runs (id) ON DELETE SET NULL,
    owner                 text NOT NULL,          -- host:pid of the process running it
    lease_until           timestamptz NOT NULL,
    heartbeat_at          timestamptz NOT NULL DEFAULT now(),
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    employees             integer,
    linked_users          integer,
    planned_deactivations integer,
    held_reason           text,
    error                 text,
    counts                jsonb NOT NULL DEFAULT '{}',
    stats                 jsonb NOT NULL DEFAULT '{}',
    approved_at           timestamptz,
    approved_by           text,
    approval_run_id       bigint
);
CREATE UNIQUE INDEX runs_one_running ON runs (connection_id) WHERE status = 'running';
CREATE INDEX runs_connection ON runs (connection_id, id);
-- The breaker's baseline and the success metric: the last good real run.
CREATE INDEX runs_last_done ON runs (connection_id, finished_at)
    WHERE status = 'done' AND kind = 'reconcile' AND NOT dry_run;
