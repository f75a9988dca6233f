/*
 * The HTML form of a reconciliation report (include/rosterd/report.h): one
 * self-contained page (inline CSS, an inline SVG chart, no script, no external
 * asset; a Content-Security-Policy forbids loading any), with the summary, what was
 * held and why, a table per group of findings and a stacked bar chart of finding
 * counts over the connection's last 30 runs.
 */
#include "rosterd/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "report_internal.h"

#define TABLE_ROWS 1000 /* rows per table; the CSV has all */

/* Finding kinds grouped as the page and the chart show them. */
static const struct group {
    const char *title, *color;
    const char *kinds[5];
} groups[] = {
    {"Held by the circuit breaker", "#7048e8", {"deactivation_held", NULL}},
    {"Needs a person", "#f08c00", {"conflict", "error", "platform_only", "unmapped_team", NULL}},
    {"Losing platform access", "#c92a2a", {"deactivated", "deactivation_scheduled", NULL}},
    {"New hires and account links", "#2f9e44", {"new_hire", "linked", NULL}},
    {"Team and manager changes", "#1c7ed6", {"team_changed", "manager_changed", NULL}},
    {"Time tracking",
     "#868e96",
     {"absence_created", "absence_removed", "attendance_pushed", "attendance_removed", NULL}},
};
#define NGROUPS (sizeof(groups) / sizeof(groups[0]))

/* Appends s with &, <, >, " and ' escaped (NULL as an empty string). */
static void esc(struct rd_buf *out, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        switch (*p) {
        case '&':
            rd_buf_puts(out, "&amp;");
            break;
        case '<':
            rd_buf_puts(out, "&lt;");
            break;
        case '>':
            rd_buf_puts(out, "&gt;");
            break;
        case '"':
            rd_buf_puts(out, "&quot;");
            break;
        case '\'':
            rd_buf_puts(out, "&#39;");
            break;
        default:
            rd_buf_putc(out, *p);
        }
    }
}

static bool in_group(const struct group *g, const char *kind)
{
    for (size_t i = 0; kind && g->kinds[i]; i++)
        if (strcmp(g->kinds[i], kind) == 0)
            return true;
    return false;
}

static int64_t group_count(const struct group *g, struct json_object *counts)
{
    int64_t n = 0;
    for (size_t i = 0; g->kinds[i]; i++)
        n += num(counts, g->kinds[i], 0);
    return n;
}

static const char STYLE[] =
    "body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#212529;"
    "margin:0;background:#f8f9fa}"
    "main{max-width:1100px;margin:0 auto;padding:24px}"
    "h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}"
    ".meta{color:#495057;margin:0 0 16px}"
    ".status{display:inline-block;padding:1px 10px;border-radius:10px;color:#fff;font-weight:600}"
    ".done{background:#2f9e44}.held{background:#7048e8}.failed{background:#c92a2a}"
    ".running{background:#868e96}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}"
    ".card{background:#fff;border-radius:8px;padding:12px 16px;min-width:140px;"
    "border-left:6px solid #ced4da;box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    ".card b{display:block;font-size:26px}"
    ".box{background:#fff;border-radius:8px;padding:12px 16px;margin:12px 0;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    ".hold{border-left:6px solid #7048e8}.fail{border-left:6px solid #c92a2a}"
    ".warn{border-left:6px solid #f08c00}.dry{border-left:6px solid #1c7ed6}"
    "table{border-collapse:collapse;width:100%;background:#fff;font-size:14px;"
    "box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    "th,td{text-align:left;vertical-align:top;padding:6px 10px;border-bottom:1px solid #e9ecef}"
    "th{background:#f1f3f5}code{background:#f1f3f5;padding:1px 4px;border-radius:3px}"
    ".chart{background:#fff;border-radius:8px;padding:8px;box-shadow:0 1px 2px rgba(0,0,0,.08)}"
    "footer{color:#868e96;font-size:13px;margin-top:32px}";

static void head(struct rd_buf *out, struct json_object *r)
{
    rd_buf_puts(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';"
                     " style-src 'unsafe-inline'\">\n"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                     "<title>Reconciliation of ");
    esc(out, str(r, "connection"));
    rd_buf_printf(out, ", run %lld</title>\n<style>%s</style>\n</head>\n<body>\n<main>\n",
                  (long long)num(r, "run_id", 0), STYLE);
}

static void summary(struct rd_buf *out, struct json_object *r)
{
    const char *status = str(r, "status") ? str(r, "status") : "running";
    bool approval = str(r, "kind") && strcmp(str(r, "kind"), "approval") == 0;
    rd_buf_puts(out, "<h1>");
    rd_buf_puts(out, approval ? "Release of held deactivations: " : "Reconciliation of ");
    esc(out, str(r, "connection"));
    rd_buf_printf(out, ", run %lld</h1>\n<p class=\"meta\">Started ",
                  (long long)num(r, "run_id", 0));
    esc(out, str(r, "started_at_local"));
    rd_buf_puts(out, str(r, "finished_at_local") ? ", finished " : ", still running");
    esc(out, str(r, "finished_at_local"));
    rd_buf_puts(out, " (");
    esc(out, str(r, "timezone"));
    rd_buf_puts(out, ") &middot; <span class=\"status ");
    esc(out, status);
    rd_buf_puts(out, "\">");
    esc(out, status);
    rd_buf_puts(out, "</span>");
    if (num(r, "employees", -1) >= 0 && !approval)
        rd_buf_printf(out,
                      " &middot; %lld employees in Personio, %lld with a linked platform account",
                      (long long)num(r, "employees", 0), (long long)num(r, "linked_users", 0));
    rd_buf_puts(out, "</p>\n");
    struct json_object *v = NULL;
    if (json_object_object_get_ex(r, "dry_run", &v) && json_object_get_boolean(v))
        rd_buf_puts(out, "<div class=\"box dry\"><b>Dry run.</b> Nothing was changed anywhere;"
                         " every action below is what a real run would do now.</div>\n");
    if (strcmp(status, "failed") == 0) {
        rd_buf_puts(out, "<div class=\"box fail\"><b>The run did not finish:</b> ");
        esc(out, str(r, "error"));
        rd_buf_puts(out, ". What it found until then is below; the next run starts over.</div>\n");
    }
    if (str(r, "held_reason") || strcmp(status, "held") == 0) {
        rd_buf_puts(out, "<div class=\"box hold\"><b>Held by the circuit breaker:</b> ");
        esc(out, str(r, "held_reason"));
        rd_buf_puts(out, ". Nobody lost access.");
        if (strcmp(status, "held") == 0)
            rd_buf_printf(out,
                          " When the list is right, an operator releases what is still due"
                          " with <code>rosterctl reconcile approve %lld</code> (each person is"
                          " checked against Personio again first; protected users are never"
                          " deactivated).",
                          (long long)num(r, "run_id", 0));
        if (str(r, "approved_by")) {
            rd_buf_puts(out, " Released by ");
            esc(out, str(r, "approved_by"));
            rd_buf_puts(out, " at ");
            esc(out, str(r, "approved_at"));
            rd_buf_printf(out, " (run %lld).", (long long)num(r, "approval_run_id", 0));
        }
        rd_buf_puts(out, "</div>\n");
    }
    struct json_object *w = json_object_object_get(r, "warnings");
    for (size_t i = 0;
         w && json_object_is_type(w, json_type_array) && i < json_object_array_length(w); i++) {
        rd_buf_puts(out, "<div class=\"box warn\"><b>Warning:</b> ");
        esc(out, json_object_get_string(json_object_array_get_idx(w, i)));
        rd_buf_puts(out, "</div>\n");
    }
    struct json_object *counts = json_object_object_get(r, "counts");
    rd_buf_puts(out, "<div class=\"cards\">\n");
    for (size_t g = 0; g < NGROUPS; g++)
        rd_buf_printf(out,
                      "<div class=\"card\" style=\"border-left-color:%s\"><b>%lld</b>%s</div>\n",
                      groups[g].color, (long long)group_count(&groups[g], counts), groups[g].title);
    rd_buf_puts(out, "</div>\n<p><b>In short:</b> ");
    struct rd_buf sum = {0};
    rd_report_summary(counts, &sum);
    esc(out, sum.data);
    rd_buf_free(&sum);
    rd_buf_puts(out, ".</p>\n");
}

/* A round axis maximum at or above max: 1, 2 or 5 times a power of ten. */
static int64_t nice_max(int64_t max)
{
    int64_t step = 1;
    while (step * 10 <= max)
        step *= 10;
    for (int64_t m = step; m < 20 * step; m += step)
        if (m >= max && (m / step == 1 || m / step == 2 || m / step == 5 || m / step == 10))
            return m;
    return max < 1 ? 1 : max;
}

/* Stacked bars, one per run (oldest left), one colour per group, with a legend. */
static void chart(struct rd_buf *out, struct json_object *r, struct json_object *history)
{
    size_t n = history && json_object_is_type(history, json_type_array)
                   ? json_object_array_length(history)
                   : 0;
    if (n > RD_REPORT_HISTORY)
        n = RD_REPORT_HISTORY;
    rd_buf_printf(out, "<h2>Finding counts, last %zu run%s</h2>\n<div class=\"chart\">\n", n,
                  n == 1 ? "" : "s");
    const int W = 1040, H = 350, L = 56, R = 16, T = 62, B = 70;
    int64_t max = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *c =
            json_object_object_get(json_object_array_get_idx(history, i), "counts");
        int64_t total = 0;
        for (size_t g = 0; g < NGROUPS; g++)
            total += group_count(&groups[g], c);
        if (total > max)
            max = total;
    }
    int64_t top = nice_max(max);
    rd_buf_printf(out,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"100%%\" viewBox=\"0 0 %d %d\""
                  " role=\"img\" aria-label=\"finding counts per run\" font-family=\"sans-serif\""
                  " font-size=\"12\">\n",
                  W, H);
    for (size_t g = 0; g < NGROUPS; g++) { /* legend: two rows of three */
        int lx = L + (int)(g % 3) * 300, ly = 8 + (int)(g / 3) * 18;
        rd_buf_printf(out,
                      "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                      "<text x=\"%d\" y=\"%d\">%s</text>\n",
                      lx, ly, groups[g].color, lx + 16, ly + 10, groups[g].title);
    }
    int ph = H - T - B;
    for (int k = 0; k <= 4; k++) { /* y axis */
        int y = T + ph - ph * k / 4;
        rd_buf_printf(out,
                      "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#dee2e6\"/>"
                      "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%lld</text>\n",
                      L, y, W - R, y, L - 6, y + 4, (long long)(top * k / 4));
    }
    int64_t current = num(r, "run_id", 0);
    double slot = n ? (double)(W - L - R) / (double)n : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *run = json_object_array_get_idx(history, n - 1 - i); /* oldest first */
        struct json_object *c = json_object_object_get(run, "counts");
        double w = slot * 0.7 > 48 ? 48 : slot * 0.7;
        double x = L + slot * (double)i + (slot - w) / 2, y = T + ph;
        int64_t total = 0;
        int64_t id = num(run, "run_id", 0);
        for (size_t g = 0; g < NGROUPS; g++) {
            int64_t v = group_count(&groups[g], c);
            if (v <= 0)
                continue;
            double h = (double)ph * (double)v / (double)top;
            y -= h;
            total += v;
            rd_buf_printf(out,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                          "<title>run %lld: %lld %s</title></rect>\n",
                          x, y, w, h, groups[g].color, (long long)id, (long long)v,
                          groups[g].title);
        }
        rd_buf_printf(out, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%lld</text>\n",
                      x + w / 2, y - 4, (long long)total);
        const char *st = str(run, "status") ? str(run, "status") : "";
        const char *day = str(run, "started_at_local") ? str(run, "started_at_local") : "";
        rd_buf_printf(
            out,
            "<text x=\"%.1f\" y=\"%d\" text-anchor=\"end\" transform=\"rotate(-45 %.1f %d)\""
            "%s>#%lld %.5s%s</text>\n",
            x + w / 2, T + ph + 14, x + w / 2, T + ph + 14,
            id == current ? " font-weight=\"bold\"" : "", (long long)id,
            strlen(day) >= 10 ? day + 5 : day,
            json_object_get_boolean(json_object_object_get(run, "dry_run")) ? " dry"
            : strcmp(st, "done") == 0                                       ? ""
            : strcmp(st, "held") == 0                                       ? " held"
                                                                            : " failed");
        if (id == current)
            rd_buf_printf(out,
                          "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"none\""
                          " stroke=\"#212529\" stroke-dasharray=\"3 2\"/>\n",
                          x - 2, T, w + 4, ph);
    }
    if (n == 0)
        rd_buf_printf(out, "<text x=\"%d\" y=\"%d\">no runs yet</text>\n", L + 10, T + ph / 2);
    rd_buf_puts(out, "</svg>\n</div>\n");
}

static void tables(struct rd_buf *out, struct json_object *r)
{
    struct json_object *findings = json_object_object_get(r, "findings");
    size_t total = findings ? json_object_array_length(findings) : 0;
    for (size_t g = 0; g < NGROUPS; g++) {
        size_t n = 0;
        for (size_t i = 0; i < total; i++)
            n += in_group(&groups[g], str(json_object_array_get_idx(findings, i), "kind"));
        if (n == 0)
            continue;
        rd_buf_printf(out,
                      "<h2>%s (%zu)</h2>\n<table>\n<tr><th>Kind</th><th>Person</th>"
                      "<th>What rosterd found</th><th>Action</th><th>Result</th></tr>\n",
                      groups[g].title, n);
        size_t shown = 0;
        for (size_t i = 0; i < total && shown < TABLE_ROWS; i++) {
            struct json_object *f = json_object_array_get_idx(findings, i);
            if (!in_group(&groups[g], str(f, "kind")))
                continue;
            shown++;
            const char *cols[5] = {str(f, "kind"), str(f, "email"), str(f, "detail"),
                                   str(f, "action"), str(f, "result")};
            rd_buf_puts(out, "<tr>");
            for (int c = 0; c < 5; c++) {
                rd_buf_puts(out, "<td>");
                esc(out, cols[c] ? cols[c] : (c == 1 ? "-" : ""));
                rd_buf_puts(out, "</td>");
            }
            rd_buf_puts(out, "</tr>\n");
        }
        rd_buf_puts(out, "</table>\n");
        if (n > shown)
            rd_buf_printf(out,
                          "<p>... and %zu more: <code>rosterctl report show %lld --format csv"
                          "</code></p>\n",
                          n - shown, (long long)num(r, "run_id", 0));
    }
    if (total == 0)
        rd_buf_puts(out, "<p>Nothing to report: HR, the platform and time tracking agree.</p>\n");
}

void rd_report_html(struct json_object *report, struct json_object *history, struct rd_buf *out)
{
    head(out, report);
    summary(out, report);
    chart(out, report, history);
    tables(out, report);
    struct json_object *rel = json_object_object_get(report, "released");
    size_t n = rel && json_object_is_type(rel, json_type_array) ? json_object_array_length(rel) : 0;
    if (n) {
        rd_buf_printf(out,
                      "<h2>What happened to each held deactivation (%zu)</h2>\n<table>\n"
                      "<tr><th>Person</th><th>Outcome</th></tr>\n",
                      n);
        for (size_t i = 0; i < n; i++) {
            struct json_object *o = json_object_array_get_idx(rel, i);
            rd_buf_puts(out, "<tr><td>");
            esc(out, str(o, "email"));
            rd_buf_puts(out, "</td><td>");
            esc(out, str(o, "outcome"));
            rd_buf_puts(out, "</td></tr>\n");
        }
        rd_buf_puts(out, "</table>\n");
    }
    rd_buf_printf(out, "<footer>rosterd reconciliation report, run %lld of ",
                  (long long)num(report, "run_id", 0));
    esc(out, str(report, "connection"));
    rd_buf_puts(out,
                ". Every row, also as CSV: <code>rosterctl report show RUN --format csv</code>."
                "</footer>\n</main>\n</body>\n</html>\n");
}
