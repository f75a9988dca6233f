/*
 * Parsing of upstream answers without a network: Personio attribute
 * unwrapping, time-off de-duplication, the attendance overlap error, Link
 * and Retry-After headers, error classification and secret scrubbing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "rosterd/http.h"
#include "rosterd/mailer.h"
#include "rosterd/personio.h"

static const char EMPLOYEE[] =
    "{\"type\":\"Employee\",\"attributes\":{"
    "\"id\":{\"label\":\"ID\",\"value\":1021,\"type\":\"integer\",\"universal_id\":\"id\"},"
    "\"first_name\":{\"label\":\"First name\",\"value\":\"Tim\",\"type\":\"standard\"},"
    "\"last_name\":{\"label\":\"Last name\",\"value\":\"Lange\",\"type\":\"standard\"},"
    "\"email\":{\"label\":\"Email\",\"value\":\"tim.lange@acme.example\",\"type\":\"standard\"},"
    "\"status\":{\"label\":\"Status\",\"value\":\"active\",\"type\":\"standard\"},"
    "\"hire_date\":{\"label\":\"Hire date\",\"value\":\"2019-11-01T00:00:00+01:00\",\"type\":\"date\"},"
    "\"termination_date\":{\"label\":\"T\",\"value\":\"2026-12-05T00:00:00+01:00\",\"type\":\"date\"},"
    "\"last_working_day\":{\"label\":\"L\",\"value\":\"2026-11-28T00:00:00+01:00\",\"type\":\"date\"},"
    "\"supervisor\":{\"label\":\"Supervisor\",\"value\":{\"type\":\"Employee\",\"attributes\":{"
    "\"id\":{\"label\":\"ID\",\"value\":1005,\"type\":\"integer\",\"universal_id\":\"id\"},"
    "\"first_name\":{\"label\":\"First name\",\"value\":\"Mia\"}}},\"type\":\"standard\"},"
    "\"team\":{\"label\":\"Team\",\"value\":{\"type\":\"Team\",\"attributes\":{\"id\":59003,\"name\":\"Support\"}}},"
    "\"department\":{\"label\":\"Department\",\"value\":{\"type\":\"Department\",\"attributes\":"
    "{\"id\":281002,\"name\":\"Customer Success\"}}},"
    "\"cost_centers\":{\"label\":\"Cost center\",\"value\":["
    "{\"type\":\"CostCenter\",\"attributes\":{\"id\":4200,\"name\":\"CC Support\",\"percentage\":60}},"
    "{\"type\":\"CostCenter\",\"attributes\":{\"id\":4300,\"name\":\"CC Sales\",\"percentage\":40}}]},"
    "\"dynamic_123\":{\"label\":\"Shoe size\",\"value\":\"44\"}}}";

static void test_employee_unwrap(void **state)
{
    (void)state;
    struct json_object *item = json_tokener_parse(EMPLOYEE);
    assert_non_null(item);
    struct rd_personio_employee e;
    assert_int_equal(rd_personio_parse_employee(item, &e), 0);
    assert_int_equal(e.id, 1021);
    assert_string_equal(e.email, "tim.lange@acme.example");
    assert_string_equal(e.first_name, "Tim");
    assert_string_equal(e.last_name, "Lange");
    assert_string_equal(e.status, "active");
    assert_string_equal(e.hire_date, "2019-11-01");
    assert_string_equal(e.termination_date, "2026-12-05");
    assert_string_equal(e.last_working_day, "2026-11-28");
    assert_int_equal(e.supervisor_id, 1005);
    assert_string_equal(e.team, "Support");
    assert_int_equal(e.team_id, 59003);
    assert_string_equal(e.department, "Customer Success");
    assert_int_equal(e.department_id, 281002);
    assert_int_equal(e.ncost_centers, 2);
    assert_string_equal(e.cost_centers[0], "CC Support");
    assert_string_equal(e.cost_centers[1], "CC Sales");
    rd_personio_employee_clear(&e);
    rd_personio_employee_clear(&e); /* a cleared record clears again */
    json_object_put(item);
}

static void test_employee_sparse(void **state)
{
    (void)state;
    /* a credential that allows few attributes; null supervisor and dates; string id */
    struct json_object *item = json_tokener_parse(
        "{\"type\":\"Employee\",\"attributes\":{\"id\":{\"label\":\"ID\",\"value\":\"77\"},"
        "\"supervisor\":{\"label\":\"S\",\"value\":null},\"termination_date\":{\"value\":null},"
        "\"hire_date\":{\"value\":\"garbage\"},\"cost_centers\":{\"value\":[]},"
        "\"team\":{\"value\":null}}}");
    struct rd_personio_employee e;
    assert_int_equal(rd_personio_parse_employee(item, &e), 0);
    assert_int_equal(e.id, 77);
    assert_null(e.email);
    assert_int_equal(e.supervisor_id, 0);
    assert_null(e.termination_date);
    assert_null(e.hire_date);
    assert_null(e.team);
    assert_int_equal(e.ncost_centers, 0);
    rd_personio_employee_clear(&e);
    json_object_put(item);

    item = json_tokener_parse(
        "{\"type\":\"Employee\",\"attributes\":{\"email\":{\"value\":\"x@y\"}}}");
    assert_int_equal(rd_personio_parse_employee(item, &e), -1); /* no id: not usable */
    rd_personio_employee_clear(&e);
    json_object_put(item);
}

/* Parses an employee whose work_schedule attribute is ws (JSON text); returns work_days. */
static unsigned work_days_of(const char *ws)
{
    char *text = NULL;
    if (asprintf(&text,
                 "{\"type\":\"Employee\",\"attributes\":{\"id\":{\"value\":5},"
                 "\"work_schedule\":%s}}",
                 ws) < 0)
        fail();
    struct json_object *item = json_tokener_parse(text);
    free(text);
    assert_non_null(item);
    struct rd_personio_employee e;
    assert_int_equal(rd_personio_parse_employee(item, &e), 0);
    unsigned days = e.work_days;
    rd_personio_employee_clear(&e);
    json_object_put(item);
    return days;
}

static void test_work_schedule(void **state)
{
    (void)state;
    /* the documented shape, wrapped in {label, value}: Monday to Thursday */
    assert_int_equal(
        work_days_of("{\"label\":\"Work schedule\",\"value\":{\"type\":\"WorkSchedule\","
                     "\"attributes\":{\"id\":3,\"name\":\"4 days\",\"monday\":\"08:00\","
                     "\"tuesday\":\"08:00\",\"wednesday\":\"8:30\",\"thursday\":\"06:00\","
                     "\"friday\":\"00:00\",\"saturday\":\"00:00\",\"sunday\":\"00:00\"}}}"),
        0x0f);
    /* attributes without the wrapper, hours as numbers and decimal strings, a weekend day */
    assert_int_equal(work_days_of("{\"value\":{\"monday\":8,\"tuesday\":0,\"wednesday\":\"7.5\","
                                  "\"saturday\":\"04:00:00\",\"sunday\":null}}"),
                     0x01 | 0x04 | 0x20);
    /* shapes seen in the wild: a bare name, null, garbage values, no hours at all */
    assert_int_equal(work_days_of("{\"value\":\"Full time\"}"), 0);
    assert_int_equal(work_days_of("{\"value\":null}"), 0);
    assert_int_equal(work_days_of("{\"value\":{\"monday\":\"eight\",\"tuesday\":\"99:00\","
                                  "\"friday\":-3}}"),
                     0);
    assert_int_equal(work_days_of("{\"value\":{\"type\":\"WorkSchedule\",\"attributes\":"
                                  "{\"monday\":\"00:00\",\"friday\":\"0\"}}}"),
                     0);
}

#define TIME_OFF(id, emp)                                                                             \
    "{\"type\":\"TimeOffPeriod\",\"attributes\":{\"id\":" #id ",\"id_v2\":\"v2-" #id "\","            \
    "\"status\":\"approved\",\"start_date\":\"2017-12-27T00:00:00+0100\","                            \
    "\"end_date\":\"2017-12-29T00:00:00+0100\",\"half_day_start\":false,\"half_day_end\":true,"       \
    "\"time_off_type\":{\"type\":\"TimeOffType\",\"attributes\":{\"id\":54321,\"name\":\"Vacation\"," \
    "\"category\":\"offsite_work\"}},\"employee\":{\"type\":\"Employee\",\"attributes\":{\"id\":"     \
    "{\"label\":\"id\",\"value\":" #emp "}}}}}"

static void test_time_off_dedup(void **state)
{
    (void)state;
    const char *page1 = "{\"success\":true,\"metadata\":{\"total_pages\":2,\"current_page\":1},"
                        "\"data\":[" TIME_OFF(1, 4567) "," TIME_OFF(2, 4568) "]}";
    const char *page2 =
        "{\"success\":true,\"metadata\":{\"total_pages\":2,\"current_page\":2},"
        "\"data\":[" TIME_OFF(2, 4568) "," TIME_OFF(3, 4569) "," TIME_OFF(3, 4569) "]}";
    struct rd_personio_time_off_list l = {0};
    int total = 0;
    assert_int_equal(rd_personio_parse_time_off_page(page1, strlen(page1), &l, &total), 0);
    assert_int_equal(total, 2);
    assert_int_equal(rd_personio_parse_time_off_page(page2, strlen(page2), &l, &total), 0);
    assert_int_equal(l.count, 3);
    assert_int_equal(l.items[0].id, 1);
    assert_int_equal(l.items[2].id, 3);
    assert_int_equal(l.items[2].employee_id, 4569);
    assert_string_equal(l.items[0].id_v2, "v2-1");
    assert_string_equal(l.items[0].start_date, "2017-12-27");
    assert_string_equal(l.items[0].end_date, "2017-12-29");
    assert_false(l.items[0].half_day_start);
    assert_true(l.items[0].half_day_end);
    assert_int_equal(l.items[0].type_id, 54321);
    assert_string_equal(l.items[0].type_name, "Vacation");
    assert_string_equal(l.items[0].status, "approved");
    assert_int_equal(rd_personio_parse_time_off_page("{nope", 5, &l, &total), -1);
    assert_int_equal(rd_personio_parse_time_off_page("{\"data\":{}}", 11, &l, &total), -1);
    rd_personio_time_off_list_free(&l);
    rd_personio_time_off_list_free(NULL);
}

static void test_overlap_error(void **state)
{
    (void)state;
    const char *post =
        "{\"success\":false,\"error\":{\"code\":400,\"message\":\"Error when trying to insert "
        "Attendances periods rows\",\"detailed_message\":[{\"success\":false,\"error_msg\":"
        "\"Existing overlapping attendances periods\",\"id\":null,\"employee\":5,\"date\":\"2026-01-02\"}]}}";
    assert_true(rd_personio_is_overlap_error(post, strlen(post)));
    char msg[256];
    rd_personio_error_message(post, strlen(post), msg, sizeof(msg));
    assert_string_equal(msg, "Error when trying to insert Attendances periods rows: Existing "
                             "overlapping attendances periods");
    const char *patch = "{\"success\":false,\"error\":{\"code\":400,\"message\":\"Existing "
                        "overlapping attendances periods\"}}";
    assert_true(rd_personio_is_overlap_error(patch, strlen(patch)));
    const char *other =
        "{\"success\":false,\"error\":{\"code\":400,\"message\":\"The break field "
        "is required.\",\"detailed_message\":[{\"success\":false,\"error_msg\":\"bad\"}]}}";
    assert_false(rd_personio_is_overlap_error(other, strlen(other)));
    assert_false(rd_personio_is_overlap_error("<html>", 6));
    rd_personio_error_message("<html>oops</html>", 17, msg, sizeof(msg));
    assert_string_equal(msg, "<html>oops</html>");
}

static void test_link_next(void **state)
{
    (void)state;
    char *n = rd_http_link_next("<https://a.mocoapp.com/api/v1/users?page=2>; rel=\"next\"");
    assert_string_equal(n, "https://a.mocoapp.com/api/v1/users?page=2");
    free(n);
    n = rd_http_link_next("<https://x/u?page=1>; rel=\"prev\", <https://x/u?page=3>; rel=\"next\"");
    assert_string_equal(n, "https://x/u?page=3");
    free(n);
    n = rd_http_link_next("<https://x/u?page=3&a=1,2>; rel=\"prev next\"");
    assert_string_equal(n, "https://x/u?page=3&a=1,2");
    free(n);
    n = rd_http_link_next("<https://x/u?page=4>;rel=next");
    assert_string_equal(n, "https://x/u?page=4");
    free(n);
    assert_null(rd_http_link_next("<https://x/u?page=1>; rel=\"prev\""));
    assert_null(rd_http_link_next("<https://x/u?page=9>; rel=\"nextpage\""));
    assert_null(rd_http_link_next(""));
    assert_null(rd_http_link_next(NULL));
    assert_null(rd_http_link_next("<broken; rel=\"next\""));
}

static void test_retry_after(void **state)
{
    (void)state;
    assert_int_equal(rd_http_parse_retry_after("120"), 120);
    assert_int_equal(rd_http_parse_retry_after(" 0"), 0);
    assert_int_equal(rd_http_parse_retry_after("1\r\n"), 1);
    assert_int_equal(rd_http_parse_retry_after(NULL), -1);
    assert_int_equal(rd_http_parse_retry_after("soon"), -1);
    assert_int_equal(rd_http_parse_retry_after("-5"), -1);
    assert_int_equal(rd_http_parse_retry_after("12abc"), -1);
    assert_int_equal(rd_http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0); /* past */
    char when[64];
    time_t later = time(NULL) + 90;
    struct tm tm;
    gmtime_r(&later, &tm);
    strftime(when, sizeof(when), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int s = rd_http_parse_retry_after(when);
    assert_true(s >= 88 && s <= 90);
}

static void test_classes_and_scrub(void **state)
{
    (void)state;
    assert_true(rd_http_status_permanent(400));
    assert_true(rd_http_status_permanent(401));
    assert_true(rd_http_status_permanent(404));
    assert_true(rd_http_status_permanent(422));
    assert_false(rd_http_status_permanent(408));
    assert_false(rd_http_status_permanent(409));
    assert_false(rd_http_status_permanent(425));
    assert_false(rd_http_status_permanent(429));
    assert_false(rd_http_status_permanent(500));
    assert_false(rd_http_status_permanent(200));

    char msg[64] = "token papi-abc123 and again papi-abc123.";
    rd_http_scrub(msg, sizeof(msg), "papi-abc123");
    assert_string_equal(msg, "token [redacted] and again [redacted].");
    char small[16] = "xx secret-value";
    rd_http_scrub(small, sizeof(small), "secret-value");
    assert_null(strstr(small, "secret"));

    char o[128];
    assert_true(rd_http_origin("https://acme.mocoapp.com/api/v1", o, sizeof(o)));
    assert_string_equal(o, "https://acme.mocoapp.com");
    assert_true(rd_http_origin("http://127.0.0.1:8080?x", o, sizeof(o)));
    assert_string_equal(o, "http://127.0.0.1:8080");
    assert_false(rd_http_origin("https://user:pw@evil.example/x", o, sizeof(o)));
    assert_false(rd_http_origin("ftp://x/", o, sizeof(o)));
}

static void test_mail_format(void **state)
{
    (void)state;
    const char *to[] = {"it@acme.example", "ops@acme.example"};
    char *m = rd_mailer_format("rosterd <rosterd@acme.example>", to, 2,
                               "Alert\r\nBcc: evil@example.com", "line 1\nline 2\n");
    assert_non_null(strstr(m, "To: it@acme.example, ops@acme.example\r\n"));
    assert_null(strstr(m, "\r\nBcc:")); /* no header injection */
    assert_non_null(strstr(m, "@acme.example>\r\n"));
    assert_non_null(strstr(m, "\r\n\r\nline 1\r\nline 2\r\n"));
    free(m);
    m = rd_mailer_format("a@b.example", to, 1, "Neue Mitarbeiterin: Jürgen", "x");
    assert_non_null(strstr(m, "Subject: =?UTF-8?B?"));
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_employee_unwrap), cmocka_unit_test(test_employee_sparse),
        cmocka_unit_test(test_work_schedule),   cmocka_unit_test(test_time_off_dedup),
        cmocka_unit_test(test_overlap_error),   cmocka_unit_test(test_link_next),
        cmocka_unit_test(test_retry_after),     cmocka_unit_test(test_classes_and_scrub),
        cmocka_unit_test(test_mail_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
