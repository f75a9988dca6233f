-- Upstream clients: the audit trail of every write sent to Personio, MOCO, the
-- platform (SCIM and approval delegations) and Slack, and the shared request
-- budget that paces MOCO (120 requests per 120 s per account) across instances.

CREATE TABLE upstream_audit (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    -- SET NULL: the trail of what was done outlives the connection that did it
    connection_id bigint REFERENCES connections (id) ON DELETE SET NULL,
    system        text NOT NULL,
    method        text NOT NULL,
    path          text NOT NULL,
    before        jsonb,
    after         jsonb,
    reason        text,
    outcome       text NOT NULL,
    http_status   integer,
    error         text
);
CREATE INDEX upstream_audit_connection_at ON upstream_audit (connection_id, at);

-- A token bucket per upstream account (account = sha256 of base URL and key,
-- never the key). One upsert both refills and takes a token; a negative
-- balance is the caller's wait (tokens / rate seconds), so callers queue in
-- order across instances. Capacity and rate are chosen so that no window of
-- the upstream's length ever sees more than its limit.
CREATE TABLE upstream_budget (
    account     text PRIMARY KEY,
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);
