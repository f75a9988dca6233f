/*
 * libFuzzer target for the rosterd.conf parser: any input either parses into
 * values inside their documented ranges or fails with a "NAME:LINE: " message;
 * the same bytes are also fed to rd_config_split_hostport.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static void check_address(const char *s)
{
    char *host = NULL;
    int port = 0;
    check(rd_config_split_hostport(s, &host, &port) == 0);
    check(host && *host && port >= 1 && port <= 65535);
    free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rd_config cfg;
    char err[256];
    rd_config_defaults(&cfg);
    err[0] = '\0';
    if (rd_config_parse((const char *)data, size, "fuzz.conf", &cfg, err, sizeof(err)) == 0) {
        check(cfg.workers >= 1 && cfg.workers <= 256);
        check(cfg.max_attempts >= 1 && cfg.max_attempts <= 100);
        check(cfg.retry_base_seconds >= 1 && cfg.retry_base_seconds <= 3600);
        check(cfg.max_body_bytes >= 1024 && cfg.max_body_bytes <= 67108864);
        check(cfg.header_timeout_seconds >= 1 && cfg.header_timeout_seconds <= 300);
        check(cfg.intake_max_pending >= 100 && cfg.intake_max_pending <= 1000000);
        check(cfg.event_retention_days >= 30 && cfg.event_retention_days <= 3650);
        check(cfg.job_history_days >= 1 && cfg.job_history_days <= 3650);
        check(cfg.test_handlers == true || cfg.test_handlers == false);
        check(!cfg.secret_key_previous_file || *cfg.secret_key_previous_file);
        check(cfg.database_url && *cfg.database_url);
        check_address(cfg.listen);
        check_address(cfg.admin_listen);
    } else {
        check(strncmp(err, "fuzz.conf:", 10) == 0);
    }
    rd_config_free(&cfg);

    /* The host:port splitter on its own, as a C string. */
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    char *host = NULL;
    int port = 0;
    if (rd_config_split_hostport(s, &host, &port) == 0)
        check(host && port >= 1 && port <= 65535);
    else
        check(host == NULL);
    free(host);
    free(s);
    return 0;
}
