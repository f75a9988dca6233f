/*
 * Unit tests for connection documents without a database (conn = NULL): the
 * field-named validation messages, env:/file: secret references, masking, and
 * sealing with rd_aead_seal then opening with rd_connection_open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "rosterd/connection.h"
#include "rosterd/crypto.h"

static const char base_json[] =
    "{\"name\": \"acme\", \"timezone\": \"Europe/Berlin\", \"start_date\": \"2026-01-01\","
    " \"personio\": {\"base_url\": \"https://api.personio.de\", \"client_id\": \"cid\","
    "   \"client_secret\": \"pcs-literal\", \"webhook_tokens\": [\"tok-one\", \"tok-two\"]},"
    " \"moco\": {\"base_url\": \"https://acme.mocoapp.com/api/v1\", \"api_key\": \"moco-key\","
    "   \"webhook_keys\": [\"hmac-key-1\"]},"
    " \"platform\": {\"scim_base_url\": \"https://spend.example/scim/v2\","
    "   \"api_base_url\": \"http://127.0.0.1:8080/api/v1\", \"token\": \"plat-token\"},"
    " \"alerts\": {\"slack_webhook_url\": \"https://hooks.slack.com/services/T0/B0/xyz\","
    "   \"email_to\": [\"it@acme.example\"]},"
    " \"team_map\": {\"Backend\": \"Engineering\", \"Support\": \"Customer Care\"},"
    " \"absence_codes\": {\"Sick leave\": 3, \"Vacation\": 4},"
    " \"fallback_approver\": \"cfo@acme.example\","
    " \"policy\": {\"onboarding_alerts\": true, \"deactivation\": true,"
    "   \"deactivation_delay_days\": 0, \"approver_reassignment\": true,"
    "   \"attendance_push\": false, \"absence_sync\": true, \"reconcile_at\": \"02:30\","
    "   \"max_deactivations_per_run\": 5, \"protected_users\": [\"ceo@acme.example\"]}}";

/* The Standard Webhooks spec's test secret (24 bytes). */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

static struct json_object *base_doc(void)
{
    struct json_object *doc = json_tokener_parse(base_json);
    assert_non_null(doc);
    return doc;
}

/* Sets "key" or "section.key" to the JSON value text; NULL deletes it. */
static void set(struct json_object *doc, const char *path, const char *value)
{
    char sec[64];
    const char *dot = strchr(path, '.');
    struct json_object *obj = doc;
    const char *key = path;
    if (dot) {
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - path), path);
        if (!json_object_object_get_ex(doc, sec, &obj)) {
            obj = json_object_new_object();
            json_object_object_add(doc, sec, obj);
        }
        key = dot + 1;
    }
    if (!value) {
        json_object_object_del(obj, key);
        return;
    }
    struct json_object *v = json_tokener_parse(value);
    assert_non_null(v);
    json_object_object_add(obj, key, v);
}

static void expect_invalid(const char *path, const char *value, const char *message)
{
    struct json_object *doc = base_doc();
    char err[512] = "";
    set(doc, path, value);
    int rc = rd_connection_validate(doc, NULL, err, sizeof err);
    if (rc == 0 || strcmp(err, message) != 0)
        print_error("%s = %s\nwanted: %s\ngot:    %s (rc %d)\n", path, value ? value : "(deleted)",
                    message, err, rc);
    assert_int_equal(rc, -1);
    assert_string_equal(err, message);
    json_object_put(doc);
}

static void expect_valid(const char *path, const char *value)
{
    struct json_object *doc = base_doc();
    char err[512] = "";
    set(doc, path, value);
    int rc = rd_connection_validate(doc, NULL, err, sizeof err);
    if (rc != 0)
        print_error("%s = %s: %s\n", path, value ? value : "(deleted)", err);
    assert_int_equal(rc, 0);
    json_object_put(doc);
}

static void test_valid_document(void **state)
{
    (void)state;
    expect_valid("name", "\"acme\"");
    expect_valid("platform", NULL);
    expect_valid("alerts", NULL);
    expect_valid("policy", NULL);
    expect_valid("start_date", "\"2024-02-29\"");
    expect_valid("policy.reconcile_at", "\"off\"");
    expect_valid("policy.reconcile_at", "\"23:59\"");
    expect_valid("name", "\"a.b_c-9\"");
    expect_valid("personio.base_url", "\"http://[::1]:8443/personio\"");
}

static void test_required_and_unknown(void **state)
{
    (void)state;
    expect_invalid("name", NULL, "name: is required");
    expect_invalid("timezone", NULL, "timezone: is required");
    expect_invalid("personio", NULL, "personio: is required");
    expect_invalid("moco", NULL, "moco: is required");
    expect_invalid("moco", "[]", "moco: must be an object");
    expect_invalid("colour", "\"blue\"", "unknown key \"colour\"");
    expect_invalid("personio.webhook_token", "[\"x\"]", "personio: unknown key \"webhook_token\"");
    expect_invalid("policy.dry_run", "true", "policy: unknown key \"dry_run\"");

    struct json_object *doc = base_doc();
    char err[256];
    set(doc, "colour", "1");
    set(doc, "size", "2");
    assert_int_equal(rd_connection_validate(doc, NULL, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown keys"));
    assert_non_null(strstr(err, "\"colour\""));
    assert_non_null(strstr(err, "\"size\""));
    json_object_put(doc);

    struct json_object *arr = json_object_new_array();
    assert_int_equal(rd_connection_validate(arr, NULL, err, sizeof err), -1);
    assert_string_equal(err, "a connection must be a JSON object");
    json_object_put(arr);
}

static void test_name_timezone_date(void **state)
{
    (void)state;
    const char *name_msg = "name: must be 1 to 63 letters, digits, '_', '.' or '-', starting with "
                           "a letter or digit";
    expect_invalid("name", "\"\"", name_msg);
    expect_invalid("name", "\"-acme\"", name_msg);
    expect_invalid("name", "\"ac me\"", name_msg);
    expect_invalid("name", "\"acme/x\"", name_msg);
    expect_invalid("name", "7", name_msg);
    expect_invalid("name", "\"a123456789012345678901234567890123456789012345678901234567890123\"",
                   name_msg);
    expect_invalid("timezone", "\"\"", "timezone: must be a non-empty string");
    expect_invalid("timezone", "1", "timezone: must be a non-empty string");
    expect_invalid("start_date", "\"2026-02-30\"", "start_date: must be a date YYYY-MM-DD");
    expect_invalid("start_date", "\"2025-02-29\"", "start_date: must be a date YYYY-MM-DD");
    expect_invalid("start_date", "\"2026-1-01\"", "start_date: must be a date YYYY-MM-DD");
    expect_invalid("start_date", "\"2026-13-01\"", "start_date: must be a date YYYY-MM-DD");
}

static void test_urls(void **state)
{
    (void)state;
    const char *msg = "personio.base_url: must be an http or https URL with a host";
    expect_invalid("personio.base_url", "\"ftp://api.personio.de\"", msg);
    expect_invalid("personio.base_url", "\"https://\"", msg);
    expect_invalid("personio.base_url", "\"https:///v1\"", msg);
    expect_invalid("personio.base_url", "\"https://api personio.de\"", msg);
    expect_invalid("personio.base_url", "\"https://host:99999/\"", msg);
    expect_invalid("personio.base_url", "\"api.personio.de\"", msg);
    expect_invalid("moco.base_url", "17",
                   "moco.base_url: must be an http or https URL with a host");
    expect_invalid("platform.scim_base_url", "\"scim\"",
                   "platform.scim_base_url: must be an http or https URL with a host");
    expect_invalid("platform.api_base_url", "\"//x\"",
                   "platform.api_base_url: must be an http or https URL with a host");
    /* The webhook URL is a credential: the message must not echo it. */
    expect_invalid("alerts.slack_webhook_url", "\"hooks.slack.com/services/SECRET\"",
                   "alerts.slack_webhook_url: must be an http or https URL with a host");
}

static void test_webhook_auth(void **state)
{
    (void)state;
    expect_invalid("personio.webhook_tokens", "[]",
                   "personio.webhook_tokens: must be a non-empty list of strings");
    expect_invalid("personio.webhook_tokens", "\"tok\"",
                   "personio.webhook_tokens: must be a non-empty list of strings");
    expect_invalid("personio.webhook_tokens", "[\"a\", \"\"]",
                   "personio.webhook_tokens[1]: must be a non-empty string");
    expect_invalid("moco.webhook_keys", NULL,
                   "moco.webhook_keys: is required: a non-empty list of strings (or set "
                   "moco.standard_webhooks_secrets)");
    expect_invalid("moco.webhook_keys", "[3]", "moco.webhook_keys[0]: must be a non-empty string");

    /* Standard Webhooks secrets replace the static tokens. */
    struct json_object *doc = base_doc();
    char err[256];
    set(doc, "personio.webhook_tokens", NULL);
    set(doc, "personio.standard_webhooks_secrets", "[\"" SW_SECRET "\"]");
    set(doc, "moco.webhook_keys", "[]");
    set(doc, "moco.standard_webhooks_secrets", "[\"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"]");
    assert_int_equal(rd_connection_validate(doc, NULL, err, sizeof err), 0);
    set(doc, "moco.standard_webhooks_secrets", "[]");
    assert_int_equal(rd_connection_validate(doc, NULL, err, sizeof err), -1);
    assert_string_equal(err, "moco.webhook_keys: must be a non-empty list of strings");
    json_object_put(doc);

    const char *sw_msg = "personio.standard_webhooks_secrets[0]: must be a whsec_ or base64 secret";
    expect_invalid("personio.standard_webhooks_secrets", "[\"whsec_not base64!\"]", sw_msg);
    expect_invalid("personio.standard_webhooks_secrets", "[\"whsec_\"]", sw_msg);
    expect_invalid("personio.standard_webhooks_secrets", "[\"abc\"]", sw_msg);
    expect_invalid("personio.standard_webhooks_secrets", "\"" SW_SECRET "\"",
                   "personio.standard_webhooks_secrets: must be a list of a whsec_ or base64 "
                   "secret");
    expect_invalid("personio.client_secret", "\"\"",
                   "personio.client_secret: must be a non-empty string");
    expect_invalid("moco.api_key", "[]", "moco.api_key: must be a non-empty string");
    expect_invalid("platform.token", "false", "platform.token: must be a non-empty string");
}

static void test_maps_and_policy(void **state)
{
    (void)state;
    expect_invalid("team_map", "[]", "team_map: must be an object of HR team to platform team");
    expect_invalid("team_map", "{\"Backend\": 1}",
                   "team_map: \"Backend\": must be a non-empty string");
    expect_invalid("absence_codes", "{\"Vacation\": 6}",
                   "absence_codes: \"Vacation\": must be an integer from 1 to 5");
    expect_invalid("absence_codes", "{\"Vacation\": 0}",
                   "absence_codes: \"Vacation\": must be an integer from 1 to 5");
    expect_invalid("absence_codes", "{\"Vacation\": \"4\"}",
                   "absence_codes: \"Vacation\": must be an integer from 1 to 5");
    expect_invalid("absence_codes", "{\"Vacation\": 4.0}",
                   "absence_codes: \"Vacation\": must be an integer from 1 to 5");
    expect_invalid("fallback_approver", "\"cfo\"", "fallback_approver: must be an e-mail address");
    expect_invalid("fallback_approver", "\"cfo@localhost\"",
                   "fallback_approver: must be an e-mail address");
    expect_invalid("fallback_approver", "\"a@b@c.de\"",
                   "fallback_approver: must be an e-mail address");
    expect_invalid("alerts.email_to", "[\"it\"]", "alerts.email_to[0]: must be an e-mail address");
    expect_invalid("policy.deactivation", "\"yes\"", "policy.deactivation: must be true or false");
    expect_invalid("policy.absence_sync", "1", "policy.absence_sync: must be true or false");
    expect_invalid("policy.deactivation_delay_days", "366",
                   "policy.deactivation_delay_days: must be an integer from 0 to 365");
    expect_invalid("policy.deactivation_delay_days", "-1",
                   "policy.deactivation_delay_days: must be an integer from 0 to 365");
    expect_invalid("policy.max_deactivations_per_run", "-1",
                   "policy.max_deactivations_per_run: must be an integer of at least 0");
    const char *ra = "policy.reconcile_at: must be \"HH:MM\" (24-hour) or \"off\"";
    expect_invalid("policy.reconcile_at", "\"24:00\"", ra);
    expect_invalid("policy.reconcile_at", "\"2:30\"", ra);
    expect_invalid("policy.reconcile_at", "\"02:60\"", ra);
    expect_invalid("policy.reconcile_at", "\"never\"", ra);
    expect_invalid("policy.protected_users", "[\"ceo@acme.example\", 5]",
                   "policy.protected_users[1]: must be a non-empty string");
    expect_invalid("policy.protected_users", "\"ceo\"",
                   "policy.protected_users: must be a list of strings");
}

static void test_moco_rate_limit(void **state)
{
    (void)state;
    expect_valid("moco.rate_limit", "{\"requests\": 1200, \"window_seconds\": 120}");
    expect_invalid("moco.rate_limit", "120",
                   "moco.rate_limit: must be an object {\"requests\": N, \"window_seconds\": S}");
    expect_invalid("moco.rate_limit", "{\"requests\": 120}",
                   "moco.rate_limit: needs both requests and window_seconds");
    expect_invalid("moco.rate_limit", "{\"requests\": 0, \"window_seconds\": 120}",
                   "moco.rate_limit.requests: must be an integer from 1 to 100000");
    expect_invalid("moco.rate_limit", "{\"requests\": 120, \"window_seconds\": \"2m\"}",
                   "moco.rate_limit.window_seconds: must be an integer from 1 to 3600");
    expect_invalid("moco.rate_limit", "{\"requests\": 1, \"window_seconds\": 1, \"burst\": 2}",
                   "moco.rate_limit: unknown key \"burst\"");
}

static const char *str_at(struct json_object *doc, const char *sec, const char *key)
{
    struct json_object *s = NULL, *v = NULL;
    assert_true(json_object_object_get_ex(doc, sec, &s));
    assert_true(json_object_object_get_ex(s, key, &v));
    return json_object_get_string(v);
}

static const char *elem_at(struct json_object *doc, const char *sec, const char *key, size_t i)
{
    struct json_object *s = NULL, *v = NULL;
    assert_true(json_object_object_get_ex(doc, sec, &s));
    assert_true(json_object_object_get_ex(s, key, &v));
    return json_object_get_string(json_object_array_get_idx(v, i));
}

static void test_resolve_env_and_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/rd_test_connXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/api-key", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("moco-from-file\n", f);
    fclose(f);
    setenv("RD_TEST_PERSONIO_SECRET", "pcs-from-env", 1);
    setenv("RD_TEST_TOKEN2", "token-from-env", 1);

    struct json_object *doc = base_doc();
    char err[256];
    set(doc, "personio.client_secret", "\"env:RD_TEST_PERSONIO_SECRET\"");
    set(doc, "personio.webhook_tokens", "[\"literal\", \"env:RD_TEST_TOKEN2\"]");
    set(doc, "moco.api_key", "\"file:api-key\""); /* relative to base_dir */
    set(doc, "team_map", "{\"Backend\": \"env:NOT_A_SECRET_FIELD\"}");
    assert_int_equal(rd_connection_resolve_secrets(doc, dir, err, sizeof err), 0);
    assert_string_equal(str_at(doc, "personio", "client_secret"), "pcs-from-env");
    assert_string_equal(elem_at(doc, "personio", "webhook_tokens", 0), "literal");
    assert_string_equal(elem_at(doc, "personio", "webhook_tokens", 1), "token-from-env");
    assert_string_equal(str_at(doc, "moco", "api_key"), "moco-from-file");
    /* Only secret fields are references; other values stay as written. */
    assert_string_equal(str_at(doc, "team_map", "Backend"), "env:NOT_A_SECRET_FIELD");
    assert_int_equal(rd_connection_validate(doc, NULL, err, sizeof err), 0);
    json_object_put(doc);

    doc = base_doc();
    unsetenv("RD_TEST_MISSING");
    set(doc, "platform.token", "\"env:RD_TEST_MISSING\"");
    assert_int_equal(rd_connection_resolve_secrets(doc, dir, err, sizeof err), -1);
    assert_string_equal(err,
                        "platform.token: env:RD_TEST_MISSING: environment variable is not set");
    json_object_put(doc);

    doc = base_doc();
    set(doc, "moco.webhook_keys", "[\"k\", \"file:no-such-file\"]");
    assert_int_equal(rd_connection_resolve_secrets(doc, dir, err, sizeof err), -1);
    assert_string_equal(err, "moco.webhook_keys[1]: file:no-such-file: No such file or directory");
    json_object_put(doc);

    /* Absolute paths ignore base_dir. */
    doc = base_doc();
    char ref[300];
    snprintf(ref, sizeof ref, "\"file:%s\"", path);
    set(doc, "alerts.slack_webhook_url", ref);
    assert_int_equal(rd_connection_resolve_secrets(doc, "/nonexistent", err, sizeof err), 0);
    assert_string_equal(str_at(doc, "alerts", "slack_webhook_url"), "moco-from-file");
    json_object_put(doc);

    unlink(path);
    rmdir(dir);
    unsetenv("RD_TEST_PERSONIO_SECRET");
    unsetenv("RD_TEST_TOKEN2");
}

static void test_masked(void **state)
{
    (void)state;
    struct json_object *doc = base_doc();
    set(doc, "moco.standard_webhooks_secrets", "[\"" SW_SECRET "\"]");
    struct json_object *m = rd_connection_masked(doc);
    assert_non_null(m);
    const char *text = json_object_to_json_string(m);
    static const char *const secrets[] = {"pcs-literal", "tok-one",    "tok-two",     "moco-key",
                                          "hmac-key-1",  "plat-token", "hooks.slack", "MfKQ9r8G"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++)
        if (strstr(text, secrets[i]))
            fail_msg("masked document contains %s: %s", secrets[i], text);
    assert_string_equal(str_at(m, "personio", "client_secret"), "********");
    assert_string_equal(elem_at(m, "personio", "webhook_tokens", 1), "********");
    assert_string_equal(elem_at(m, "moco", "standard_webhooks_secrets", 0), "********");
    assert_string_equal(str_at(m, "alerts", "slack_webhook_url"), "********");
    /* Non-secrets are kept and the original is untouched. */
    assert_string_equal(str_at(m, "personio", "client_id"), "cid");
    assert_string_equal(str_at(m, "personio", "base_url"), "https://api.personio.de");
    assert_string_equal(str_at(doc, "personio", "client_secret"), "pcs-literal");
    json_object_put(m);
    json_object_put(doc);
}

static void test_ordered(void **state)
{
    (void)state;
    struct json_object *doc = json_tokener_parse(
        "{\"policy\": {\"reconcile_at\": \"off\", \"deactivation\": true}, \"moco\": {},"
        " \"name\": \"acme\", \"zz\": 1, \"timezone\": \"UTC\"}");
    struct json_object *o = rd_connection_ordered(doc);
    assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
                        "{\"name\":\"acme\",\"timezone\":\"UTC\",\"moco\":{},\"policy\":"
                        "{\"deactivation\":true,\"reconcile_at\":\"off\"},\"zz\":1}");
    json_object_put(o);
    json_object_put(doc);
}

static void test_seal_open_round_trip(void **state)
{
    (void)state;
    uint8_t key[RD_SECRET_KEY_LEN];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(i * 7 + 1);
    struct json_object *doc = base_doc();
    set(doc, "moco.standard_webhooks_secrets", "[\"" SW_SECRET "\"]");
    const char *plain = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    assert_int_equal(rd_aead_seal(key, "acme", 4, plain, strlen(plain), &sealed, &sealed_len), 0);
    assert_null(memmem(sealed, sealed_len, "tok-one", 7));

    struct rd_connection *c = NULL;
    char err[256];
    assert_int_equal(rd_connection_open(key, 42, "acme", sealed, sealed_len, &c, err, sizeof err),
                     0);
    assert_non_null(c);
    assert_int_equal(c->id, 42);
    assert_string_equal(c->name, "acme");
    assert_string_equal(c->timezone, "Europe/Berlin");
    assert_int_equal(c->personio.ntokens, 2);
    assert_string_equal(c->personio.tokens[0], "tok-one");
    assert_string_equal(c->personio.tokens[1], "tok-two");
    assert_int_equal(c->personio.nsw, 0);
    assert_int_equal(c->moco.ntokens, 1);
    assert_string_equal(c->moco.tokens[0], "hmac-key-1");
    assert_int_equal(c->moco.nsw, 1);
    assert_string_equal(c->moco.sw_secrets[0], SW_SECRET);
    assert_string_equal(str_at(c->doc, "platform", "token"), "plat-token");
    rd_connection_free(c);

    /* Bound to the name: another connection's row does not open. */
    c = NULL;
    assert_int_equal(rd_connection_open(key, 42, "other", sealed, sealed_len, &c, err, sizeof err),
                     -1);
    assert_null(c);
    assert_non_null(strstr(err, "cannot decrypt"));
    /* Wrong key, and a flipped byte. */
    key[0] ^= 1;
    assert_int_equal(rd_connection_open(key, 42, "acme", sealed, sealed_len, &c, err, sizeof err),
                     -1);
    key[0] ^= 1;
    sealed[sealed_len / 2] ^= 0x40;
    assert_int_equal(rd_connection_open(key, 42, "acme", sealed, sealed_len, &c, err, sizeof err),
                     -1);
    rd_connection_free(NULL);
    free(sealed);
    json_object_put(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_document),
        cmocka_unit_test(test_required_and_unknown),
        cmocka_unit_test(test_name_timezone_date),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_webhook_auth),
        cmocka_unit_test(test_maps_and_policy),
        cmocka_unit_test(test_moco_rate_limit),
        cmocka_unit_test(test_resolve_env_and_file),
        cmocka_unit_test(test_masked),
        cmocka_unit_test(test_ordered),
        cmocka_unit_test(test_seal_open_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
