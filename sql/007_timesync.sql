-- Time sync (DESIGN.md §1 "Attendance push" and "Absence sync"; handlers/attendance.c,
-- handlers/absence.c): what rosterd wrote upstream and for what, so that a change
-- becomes a PATCH or PUT of rosterd's own record and a removal deletes only what
-- rosterd made, plus the watermarks of the hourly and daily sweeps.
--
-- * attendance_links: MOCO presence -> the Personio attendance rosterd created for it.
--   An attendance without a link was not made by rosterd and is never changed. date
--   and times are what rosterd last wrote (the old day of a presence that moved).
-- * attendance_conflicts: a presence Personio refused as overlapping another
--   attendance. It is not tried again (no endless retry, no second finding) while
--   the presence is unchanged and the attendance it overlapped is still there.
-- * schedule_links: MOCO schedule -> the Personio time-off it mirrors (v1 id, and the
--   v2 id that absence webhooks carry). A schedule without a link was not made by
--   rosterd: it is left alone (code 1 "not plannable" excepted, which is replaced).
-- * absence_kept: a day of a time-off that was not mirrored because MOCO already had
--   someone else's entry; recorded so it is reported once, not every day.
-- * timesync_sweeps: per connection, where the next sweep starts.
--
-- Links hang off the person's people row (sql/005) and go with it.

CREATE TABLE attendance_links (
    connection_id  bigint NOT NULL,
    presence_id    bigint NOT NULL,
    attendance_id  bigint NOT NULL,
    personio_id    bigint NOT NULL,
    moco_user_id   bigint NOT NULL,
    date           date NOT NULL,
    start_time     text NOT NULL,
    end_time       text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, presence_id),
    UNIQUE (connection_id, attendance_id),
    FOREIGN KEY (connection_id, personio_id) REFERENCES people (connection_id, personio_id)
        ON DELETE CASCADE
);
CREATE INDEX attendance_links_user_day ON attendance_links (connection_id, moco_user_id, date);

CREATE TABLE attendance_conflicts (
    connection_id  bigint NOT NULL,
    presence_id    bigint NOT NULL,
    personio_id    bigint NOT NULL,
    moco_user_id   bigint NOT NULL,
    date           date NOT NULL,
    start_time     text NOT NULL,
    end_time       text NOT NULL,
    other_ids      bigint[] NOT NULL,
    message        text NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, presence_id),
    FOREIGN KEY (connection_id, personio_id) REFERENCES people (connection_id, personio_id)
        ON DELETE CASCADE
);

CREATE TABLE schedule_links (
    connection_id  bigint NOT NULL,
    schedule_id    bigint NOT NULL,
    time_off_id    bigint NOT NULL,
    time_off_id_v2 text,
    personio_id    bigint NOT NULL,
    moco_user_id   bigint NOT NULL,
    date           date NOT NULL,
    am             boolean NOT NULL,
    pm             boolean NOT NULL,
    absence_code   integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, schedule_id),
    -- MOCO keeps one entry per user and day (half days are am/pm of that entry)
    UNIQUE (connection_id, moco_user_id, date),
    FOREIGN KEY (connection_id, personio_id) REFERENCES people (connection_id, personio_id)
        ON DELETE CASCADE
);
CREATE INDEX schedule_links_time_off ON schedule_links (connection_id, time_off_id);
CREATE INDEX schedule_links_time_off_v2 ON schedule_links (connection_id, time_off_id_v2)
    WHERE time_off_id_v2 IS NOT NULL;
CREATE INDEX schedule_links_person ON schedule_links (connection_id, personio_id, date);

CREATE TABLE absence_kept (
    connection_id  bigint NOT NULL,
    personio_id    bigint NOT NULL,
    time_off_id    bigint NOT NULL,
    date           date NOT NULL,
    schedule_id    bigint NOT NULL,
    absence_code   integer NOT NULL,
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection_id, time_off_id, date),
    FOREIGN KEY (connection_id, personio_id) REFERENCES people (connection_id, personio_id)
        ON DELETE CASCADE
);

CREATE TABLE timesync_sweeps (
    connection_id   bigint PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    -- sweep.attendance reads presences changed after this (MOCO's updated_after)
    presences_after timestamptz,
    -- sweep.absence reads time-offs updated on or after this day (Personio's updated_from)
    time_offs_from  date,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
