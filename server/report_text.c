/*
 * The text and CSV forms of a reconciliation report (include/rosterd/report.h). The
 * text is for a finance admin, not an engineer: what happened in one sentence, then
 * what was held and why, what needs a person, who loses access when, who was invited
 * or waits for an invitation, team changes and time tracking, each in plain words and
 * cut to a readable length (the CSV has every row).
 */
#include "rosterd/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "report_internal.h"

#define WIDTH 96        /* text lines are wrapped here */
#define SECTION_ROWS 25 /* rows per section in the text; the CSV has all */

/* Appends text wrapped at WIDTH: the first line after first, the others after indent spaces. */
static void wrap(struct rd_buf *out, const char *first, int indent, const char *text)
{
    rd_buf_puts(out, first);
    const char *nl = strrchr(first, '\n');
    size_t col = strlen(nl ? nl + 1 : first);
    bool space = first[0] && first[strlen(first) - 1] != ' ' && first[strlen(first) - 1] != '\n';
    const char *p = text;
    while (*p) {
        while (*p == ' ' || *p == '\n')
            p++;
        const char *w = p;
        bool quoted = false; /* a `command` stays on one line, ready to copy */
        while (*p && (quoted || (*p != ' ' && *p != '\n'))) {
            if (*p == '`')
                quoted = !quoted;
            p++;
        }
        size_t len = (size_t)(p - w);
        if (len == 0)
            continue;
        if (col > (size_t)indent && col + 1 + len > WIDTH) {
            rd_buf_printf(out, "\n%*s", indent, "");
            col = (size_t)indent;
            space = false;
        }
        if (space) {
            rd_buf_putc(out, ' ');
            col++;
        }
        rd_buf_append(out, w, len);
        col += len;
        space = true;
    }
    rd_buf_putc(out, '\n');
}

/*
 * The kind a finding is shown under: a MOCO link (identity.c says "MOCO id" in its
 * action) is time tracking, not an invitation to the platform.
 */
static const char *shown_kind(struct json_object *f)
{
    const char *kind = str(f, "kind"), *action = str(f, "action");
    if (kind && strcmp(kind, "linked") == 0 && action && strstr(action, "MOCO"))
        return "linked_moco";
    return kind ? kind : "";
}

static bool kind_in(const char *kind, const char *const *kinds)
{
    for (size_t i = 0; kinds[i]; i++)
        if (strcmp(kind, kinds[i]) == 0)
            return true;
    return false;
}

static size_t count_kinds(struct json_object *findings, const char *const *kinds)
{
    size_t n = 0;
    for (size_t i = 0; i < json_object_array_length(findings); i++)
        n += kind_in(shown_kind(json_object_array_get_idx(findings, i)), kinds);
    return n;
}

/* What a result means next to an action, in words. */
static const char *result_words(const char *result, bool dry)
{
    if (!result)
        return "";
    if (strcmp(result, "planned") == 0)
        return dry ? " [would be done by a real run]" : " [planned]";
    if (strcmp(result, "held") == 0)
        return " [held: waits for approval]";
    if (strcmp(result, "failed") == 0)
        return " [failed]";
    if (strcmp(result, "skipped") == 0)
        return " [skipped]";
    return "";
}

/* Short label of a finding kind inside a mixed section. */
static const char *kind_words(const char *kind)
{
    static const struct {
        const char *kind, *words;
    } names[] = {
        {"conflict", "conflict"},
        {"error", "error"},
        {"platform_only", "not in Personio"},
        {"unmapped_team", "HR team without a platform team"},
        {"deactivated", "access removed"},
        {"deactivation_scheduled", "loses access later"},
        {"deactivation_held", "held"},
        {"new_hire", "new hire"},
        {"linked", "linked"},
        {"linked_moco", "linked to their MOCO user"},
        {"team_changed", "team"},
        {"manager_changed", "manager"},
        {"absence_created", "absence mirrored to MOCO"},
        {"absence_removed", "absence removed from MOCO"},
        {"attendance_pushed", "attendance pushed to Personio"},
        {"attendance_removed", "attendance removed from Personio"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(kind, names[i].kind) == 0)
            return names[i].words;
    return kind;
}

/* One section: heading, intro, then at most SECTION_ROWS findings of kinds. */
static void section(struct rd_buf *out, struct json_object *report, const char *heading,
                    const char *intro, const char *const *kinds, bool label)
{
    struct json_object *findings = json_object_object_get(report, "findings");
    size_t n = count_kinds(findings, kinds), shown = 0;
    if (n == 0)
        return;
    bool dry = flag(report, "dry_run");
    rd_buf_printf(out, "\n%s (%zu)\n", heading, n);
    if (intro)
        wrap(out, "  ", 2, intro);
    /* Routine links need fewer examples than what a person has to read. */
    size_t max =
        kind_in("linked", kinds) || kind_in("linked_moco", kinds) ? SECTION_ROWS / 2 : SECTION_ROWS;
    /* Kind by kind in the order the section lists them (what a person acts on first),
     * each kind in the order the run found it. */
    for (size_t k = 0; kinds[k] && shown < max; k++) {
        for (size_t i = 0; i < json_object_array_length(findings) && shown < max; i++) {
            struct json_object *f = json_object_array_get_idx(findings, i);
            const char *kind = shown_kind(f);
            if (strcmp(kind, kinds[k]) != 0)
                continue;
            shown++;
            struct rd_buf line = {0}, first = {0};
            rd_buf_printf(&first, "  - %s%s%s", label ? kind_words(kind) : "", label ? ": " : "",
                          str(f, "email") ? str(f, "email") : "(no e-mail)");
            rd_buf_puts(&first, ":");
            rd_buf_printf(&line, "%s%s", str(f, "detail") ? str(f, "detail") : "",
                          result_words(str(f, "result"), dry));
            wrap(out, first.data, 6, line.data);
            rd_buf_free(&line);
            rd_buf_free(&first);
        }
    }
    if (n > shown)
        rd_buf_printf(out,
                      "  ... and %zu more: rosterctl report show %lld --connection %s"
                      " --format csv\n",
                      n - shown, (long long)num(report, "run_id", 0),
                      str(report, "connection") ? str(report, "connection") : "?");
}

static void header(struct rd_buf *out, struct json_object *report)
{
    const char *status = str(report, "status") ? str(report, "status") : "?";
    const char *conn = str(report, "connection") ? str(report, "connection") : "?";
    long long id = (long long)num(report, "run_id", 0);
    bool approval = str(report, "kind") && strcmp(str(report, "kind"), "approval") == 0;
    rd_buf_printf(out, "%s of %s, run %lld\n",
                  approval ? "Release of held deactivations" : "Reconciliation report", conn, id);
    rd_buf_printf(out, "Started %s, %s %s (%s). Status: %s.\n",
                  str(report, "started_at_local") ? str(report, "started_at_local") : "?",
                  str(report, "finished_at_local") ? "finished" : "still",
                  str(report, "finished_at_local") ? str(report, "finished_at_local") : "running",
                  str(report, "timezone") ? str(report, "timezone") : "UTC", status);
    if (flag(report, "dry_run"))
        wrap(out, "", 0,
             "This was a dry run: nothing was changed anywhere. Every action below"
             " is what a real run would do now.");
    if (approval && num(report, "approves_run_id", 0))
        rd_buf_printf(out, "This releases what run %lld held.\n",
                      (long long)num(report, "approves_run_id", 0));
    if (num(report, "employees", -1) >= 0 && !approval)
        rd_buf_printf(out,
                      "Personio listed %lld employees; %lld of them have a linked platform"
                      " account.\n",
                      (long long)num(report, "employees", 0),
                      (long long)num(report, "linked_users", 0));
    if (strcmp(status, "failed") == 0) {
        struct rd_buf b = {0};
        rd_buf_printf(&b,
                      "The run did not finish: %s. What it found until then is below; the"
                      " next run starts over.",
                      str(report, "error") ? str(report, "error") : "unknown error");
        wrap(out, "", 0, b.data);
        rd_buf_free(&b);
    }
    if (str(report, "approved_by"))
        rd_buf_printf(out, "Held deactivations released by %s at %s UTC (run %lld).\n",
                      str(report, "approved_by"),
                      str(report, "approved_at") ? str(report, "approved_at") : "?",
                      (long long)num(report, "approval_run_id", 0));
    struct rd_buf sum = {0};
    rd_report_summary(json_object_object_get(report, "counts"), &sum);
    wrap(out, "\nIn short:", 2, sum.data);
    rd_buf_free(&sum);
}

static void held_section(struct rd_buf *out, struct json_object *report)
{
    static const char *const held[] = {"deactivation_held", NULL};
    const char *status = str(report, "status");
    bool still_held = status && strcmp(status, "held") == 0;
    struct rd_buf intro = {0};
    if (str(report, "held_reason"))
        rd_buf_printf(&intro,
                      "The circuit breaker stopped this run from removing access because %s."
                      " Nobody below lost access. ",
                      str(report, "held_reason"));
    if (still_held && !flag(report, "dry_run"))
        rd_buf_printf(&intro,
                      "When the list is right, an operator releases what is still due with"
                      " `rosterctl reconcile approve %lld`: each person is checked against"
                      " Personio again first, and protected users are never deactivated.",
                      (long long)num(report, "run_id", 0));
    if (count_kinds(json_object_object_get(report, "findings"), held) == 0 && intro.len) {
        rd_buf_puts(out, "\nHeld by the circuit breaker\n");
        wrap(out, "  ", 2, intro.data);
    } else {
        section(out, report, "Held by the circuit breaker", intro.len ? intro.data : NULL, held,
                false);
    }
    rd_buf_free(&intro);
}

static void released_section(struct rd_buf *out, struct json_object *report)
{
    struct json_object *rel = json_object_object_get(report, "released");
    size_t n = rel && json_object_is_type(rel, json_type_array) ? json_object_array_length(rel) : 0;
    if (n == 0)
        return;
    rd_buf_printf(out, "\nWhat happened to each held deactivation (%zu)\n", n);
    for (size_t i = 0; i < n && i < SECTION_ROWS * 4; i++) {
        struct json_object *o = json_object_array_get_idx(rel, i);
        const char *what = str(o, "outcome") ? str(o, "outcome") : "?";
        const char *words = strcmp(what, "deactivated") == 0 ? "deactivated now"
                            : strcmp(what, "not_due") == 0   ? "not due any more: left alone"
                            : strcmp(what, "scheduled") == 0 ? "not due yet: scheduled"
                            : strcmp(what, "protected") == 0 ? "protected user: left alone"
                                                             : "failed: see the errors above";
        rd_buf_printf(out, "  - %s: %s\n", str(o, "email") ? str(o, "email") : "?", words);
    }
}

void rd_report_text(struct json_object *report, struct rd_buf *out)
{
    static const char *const person[] = {"conflict", "error", "platform_only", "unmapped_team",
                                         NULL};
    static const char *const access[] = {"deactivated", "deactivation_scheduled", NULL};
    static const char *const hires[] = {"new_hire", "linked", NULL};
    static const char *const teams[] = {"team_changed", "manager_changed", NULL};
    static const char *const time[] = {"absence_created",   "absence_removed", "attendance_removed",
                                       "attendance_pushed", "linked_moco",     NULL};
    header(out, report);
    held_section(out, report);
    section(out, report, "Needs a person",
            "rosterd did not change these; someone has to look at each one.", person, true);
    section(out, report, "Who loses platform access", NULL, access, true);
    section(out, report, "New hires: invited or waiting for an invitation",
            "\"new hire\": in Personio, not yet on the platform (invite with `rosterctl hires"
            " invite EMAIL`); \"linked\": has a platform account (invited or existing), now tied"
            " to their HR record.",
            hires, true);
    section(out, report, "Team and manager changes", NULL, teams, true);
    section(out, report, "Time tracking", NULL, time, true);
    released_section(out, report);
    struct json_object *w = json_object_object_get(report, "warnings");
    for (size_t i = 0;
         w && json_object_is_type(w, json_type_array) && i < json_object_array_length(w); i++) {
        if (i == 0)
            rd_buf_puts(out, "\nWarnings\n");
        wrap(out, "  - ", 4, json_object_get_string(json_object_array_get_idx(w, i)));
    }
    if (json_object_array_length(json_object_object_get(report, "findings")) == 0)
        rd_buf_puts(out, "\nNothing to report: HR, the platform and time tracking agree.\n");
}

/* ---- CSV (RFC 4180) ---- */

void rd_report_csv_field(struct rd_buf *out, const char *value)
{
    if (!value)
        return; /* an empty field */
    /* A spreadsheet would run a cell starting like a formula: make it plain text. */
    bool formula = value[0] == '=' || value[0] == '+' || value[0] == '-' || value[0] == '@' ||
                   value[0] == '\t' || value[0] == '\r';
    bool quote = formula || strpbrk(value, ",\"\r\n") != NULL;
    if (!quote) {
        rd_buf_puts(out, value);
        return;
    }
    rd_buf_putc(out, '"');
    if (formula)
        rd_buf_putc(out, '\'');
    for (const char *p = value; *p; p++) {
        if (*p == '"')
            rd_buf_putc(out, '"');
        rd_buf_putc(out, *p);
    }
    rd_buf_putc(out, '"');
}

void rd_report_csv(struct json_object *report, struct rd_buf *out)
{
    static const char *const cols[] = {"kind", "email", "detail", "action", "result"};
    rd_buf_puts(out, "run_id,connection,kind,email,detail,action,result\r\n");
    struct json_object *findings = json_object_object_get(report, "findings");
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)num(report, "run_id", 0));
    for (size_t i = 0; findings && i < json_object_array_length(findings); i++) {
        struct json_object *f = json_object_array_get_idx(findings, i);
        rd_buf_puts(out, id);
        rd_buf_putc(out, ',');
        rd_report_csv_field(out, str(report, "connection"));
        for (size_t c = 0; c < 5; c++) {
            rd_buf_putc(out, ',');
            rd_report_csv_field(out, str(f, cols[c]));
        }
        rd_buf_puts(out, "\r\n");
    }
}
