-- People and their identity links, findings, and once-only alerts: the state the
-- handlers (handlers/*.c) and the nightly reconciliation share.
--
-- * people: one row per Personio employee a connection has seen, with what the
--   handlers last read of them (the HR truth stays in Personio; this is a mirror that
--   answers "who reports to X" and "who is waiting for an invite" without paging all
--   employees) and the pinned links: an HR employee is linked to a platform (SCIM)
--   user and a MOCO user once by e-mail, then by id, so an e-mail change in Personio
--   follows the person instead of making a stranger (DESIGN.md §1).
-- * findings: what a handler or a reconciliation run found and did, in DESIGN.md §7's
--   kinds. run_id is set for reconciliation runs, event_id/job_id for handlers.
-- * alerts_sent: one row per alert that must go out once only (a hire, a
--   delegation, a deactivation), whatever replays and duplicates arrive.

CREATE TABLE people (
    connection_id  bigint NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    personio_id    bigint NOT NULL,
    email          text NOT NULL,
    first_name     text,
    last_name      text,
    status         text,
    team           text,
    department     text,
    supervisor_id  bigint,
    hire_date      date,
    last_day       date,
    scim_id        text,
    moco_user_id   bigint,
    scim_linked_at timestamptz,
    moco_linked_at timestamptz,
    seen_at        timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, personio_id)
);
-- A platform or MOCO account belongs to one person at most.
CREATE UNIQUE INDEX people_scim ON people (connection_id, scim_id) WHERE scim_id IS NOT NULL;
CREATE UNIQUE INDEX people_moco ON people (connection_id, moco_user_id)
    WHERE moco_user_id IS NOT NULL;
CREATE INDEX people_email ON people (connection_id, lower(email));
CREATE INDEX people_supervisor ON people (connection_id, supervisor_id)
    WHERE supervisor_id IS NOT NULL;

CREATE TABLE findings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    connection_id bigint NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    run_id        bigint,
    event_id      bigint,
    job_id        bigint,
    kind          text NOT NULL CHECK (kind IN (
                      'linked', 'new_hire', 'platform_only', 'deactivated',
                      'deactivation_scheduled', 'deactivation_held', 'team_changed',
                      'manager_changed', 'unmapped_team', 'absence_created',
                      'absence_removed', 'attendance_pushed', 'attendance_removed',
                      'conflict', 'error')),
    email         text,
    detail        text NOT NULL,
    action        text,
    result        text,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX findings_run ON findings (run_id, id) WHERE run_id IS NOT NULL;
CREATE INDEX findings_connection_at ON findings (connection_id, at);

CREATE TABLE alerts_sent (
    connection_id bigint NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    alert_key     text NOT NULL,
    sent_at       timestamptz NOT NULL DEFAULT now(),
    reason        text,
    text          text NOT NULL,
    PRIMARY KEY (connection_id, alert_key)
);
