-- test.upstream* events (test suites only: the kind runs only with test_handlers = on,
-- see handlers/noop.c): one level-triggered upstream write per event, a platform
-- user created unless it exists, so the fault-injection test can count upstream
-- writes per event through the sandbox's request log and upstream_audit.
INSERT INTO job_routes (source, pattern, kind, priority) VALUES
    ('*', 'test.upstream%', 'test.upstream', 5);
