-- The people lifecycle (handlers/onboarding.c, movers.c, deactivation.c, approver.c):
-- what rosterd has done to a person's platform account that the upstreams cannot tell
-- it again, so that replays, duplicates and nightly runs never do it twice.
--
-- * hires: one row per new employee the admins were told about (status alerted), whom
--   an operator invited (`rosterctl hires invite`, status invited) or who got a
--   platform account some other way (status linked). `rosterctl hires list` reads it.
-- * deactivations: one row per (person, last day) whose account rosterd deactivated,
--   or refused to because the person is protected. A replay that finds the account
--   already inactive knows from it that the alert is still owed.
-- * delegations: the approval delegations rosterd created on the platform, by the
--   Personio time-off they stand in for. The platform holds the truth (rosterd lists
--   an approver's delegations before it changes any); this table is how rosterd knows
--   whose to look at when an absence disappears from Personio.
-- * people_mirror: when the people mirror last held every Personio employee, and how
--   many. "Who reports to X" (is X an approver?) is answered from the mirror; until it
--   has been filled once, the first question fills it.
-- * Scheduled deactivations are jobs (kind lifecycle.deactivate, run_at = the instant);
--   `rosterctl deactivations upcoming` lists them, so they need no table of their own.
--
-- Rows of a person go with the person's mirror row (ON DELETE CASCADE).

CREATE TABLE hires (
    connection_id bigint NOT NULL,
    personio_id   bigint NOT NULL,
    status        text NOT NULL CHECK (status IN ('alerted', 'invited', 'linked')),
    hr_team       text,
    scim_id       text,
    alerted_at    timestamptz,
    invited_at    timestamptz,
    linked_at     timestamptz,
    reason        text,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, personio_id),
    FOREIGN KEY (connection_id, personio_id) REFERENCES people (connection_id, personio_id)
        ON DELETE CASCADE
);

CREATE TABLE deactivations (
    connection_id bigint NOT NULL,
    personio_id   bigint NOT NULL,
    last_day      date NOT NULL,
    deactivate_at timestamptz NOT NULL,
    scim_id       text NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('deactivated', 'protected')),
    reason        text,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, personio_id, last_day),
    FOREIGN KEY (connection_id, personio_id) REFERENCES people (connection_id, personio_id)
        ON DELETE CASCADE
);

CREATE TABLE delegations (
    connection_id bigint NOT NULL,
    time_off_id   bigint NOT NULL,
    approver_id   bigint NOT NULL,
    platform_id   text NOT NULL,
    external_id   text NOT NULL,
    delegate      text NOT NULL,
    start_date    date NOT NULL,
    end_date      date NOT NULL,
    reason        text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, time_off_id),
    FOREIGN KEY (connection_id, approver_id) REFERENCES people (connection_id, personio_id)
        ON DELETE CASCADE
);
CREATE INDEX delegations_approver ON delegations (connection_id, approver_id);

CREATE TABLE people_mirror (
    connection_id bigint PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    employees     integer NOT NULL,
    complete_at   timestamptz NOT NULL DEFAULT now()
);

-- Open deactivation jobs are looked up by person (connection, subject).
CREATE INDEX jobs_deactivations ON jobs (connection_id, subject)
    WHERE kind = 'lifecycle.deactivate';

-- An instant as local ISO 8601 with its offset in tz ("2026-12-16T00:00:00+01:00"), for
-- alerts and `deactivations upcoming`; the arithmetic stays in SQL (DESIGN.md §9).
CREATE FUNCTION rd_local_iso(ts timestamptz, tz text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT to_char(l, 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN l < u THEN '-' ELSE '+' END
           || to_char(CASE WHEN l < u THEN u - l ELSE l - u END, 'HH24:MI')
    FROM (SELECT ts AT TIME ZONE tz AS l, ts AT TIME ZONE 'UTC' AS u) x
$$;
