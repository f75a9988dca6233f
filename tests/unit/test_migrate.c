/*
 * Unit tests for the compiled-in migration table (no database): versions are
 * unique and increasing, names match their files, and no file carries its own
 * transaction control, which would break the one-transaction-per-file rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "rosterd/migrate.h"

#ifndef RD_SOURCE_DIR
#error "RD_SOURCE_DIR must name the source tree"
#endif

static void test_table_sorted(void **state)
{
    (void)state;
    assert_true(rd_migrations_count >= 1);
    assert_int_equal(rd_migrations[0].version, 1);
    for (size_t i = 0; i < rd_migrations_count; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "%03d_", rd_migrations[i].version);
        assert_memory_equal(rd_migrations[i].name, prefix, strlen(prefix));
        assert_true(strlen(rd_migrations[i].sql) > 0);
        if (i > 0)
            assert_true(rd_migrations[i].version > rd_migrations[i - 1].version);
    }
    assert_int_equal(rd_migrate_latest(), rd_migrations[rd_migrations_count - 1].version);
}

static void test_embedded_text_matches_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < rd_migrations_count; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/sql/%s.sql", RD_SOURCE_DIR, rd_migrations[i].name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        rewind(f);
        char *buf = calloc(1, (size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        assert_string_equal(buf, rd_migrations[i].sql);
        free(buf);
    }
}

/* A statement line such as "COMMIT;" (plpgsql's bare BEGIN has no semicolon). */
static bool is_txn_statement(const char *line, size_t len)
{
    static const char *const stmts[] = {"BEGIN;", "COMMIT;", "ROLLBACK;", "START TRANSACTION"};
    while (len > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        size_t n = strlen(stmts[i]);
        if (len >= n && strncasecmp(line, stmts[i], n) == 0)
            return true;
    }
    return false;
}

static void test_no_transaction_control(void **state)
{
    (void)state;
    for (size_t i = 0; i < rd_migrations_count; i++) {
        const char *p = rd_migrations[i].sql;
        while (*p) {
            size_t len = strcspn(p, "\r\n");
            if (is_txn_statement(p, len))
                fail_msg("%s: transaction control in a migration: %.*s", rd_migrations[i].name,
                         (int)len, p);
            p += len;
            while (*p == '\r' || *p == '\n')
                p++;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_sorted),
        cmocka_unit_test(test_embedded_text_matches_files),
        cmocka_unit_test(test_no_transaction_control),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
