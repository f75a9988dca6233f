/*
 * Slack incoming-webhook client. The hook URL is a bearer credential in
 * disguise, so logs, errors and the audit trail show its host only.
 */
#include "rosterd/slack.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *rd_slack_escape(const char *text)
{
    struct rd_buf b = {0};
    rd_buf_puts(&b, "");
    for (const char *p = text; p && *p; p++) {
        if (*p == '&')
            rd_buf_puts(&b, "&amp;");
        else if (*p == '<')
            rd_buf_puts(&b, "&lt;");
        else if (*p == '>')
            rd_buf_puts(&b, "&gt;");
        else
            rd_buf_putc(&b, *p);
    }
    return rd_buf_steal(&b);
}

/* Slack answers errors as short plain-text codes (no_text, channel_is_archived). */
static void slack_errmsg(const char *body, size_t len, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < outlen && j < 80; i++) {
        char c = body[i];
        if (c == '\n' || c == '\r')
            break;
        out[j++] = (c >= 0x20 && c < 0x7f) ? c : ' ';
    }
    out[j] = '\0';
}

/* "hooks.slack.com" from the URL; the path is the secret part. */
static void url_host(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = memchr(p, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    snprintf(out, outlen, "%.*s", (int)n, p);
}

int rd_slack_post(struct rd_http_client *http, const char *webhook_url, const char *text,
                  struct json_object *blocks, const struct rd_audit_ctx *audit, double deadline,
                  struct rd_http_error *err)
{
    char host[256];
    url_host(webhook_url, host, sizeof(host));
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "text", json_object_new_string(text ? text : ""));
    if (blocks)
        json_object_object_add(b, "blocks", json_object_get(blocks));
    const char *body = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN);
    const char *path = strstr(webhook_url, "://");
    path = path ? path + 3 + strcspn(path + 3, "/") : webhook_url;
    rd_log_redact_add(webhook_url); /* never formatted; redaction is the second line of defence */
    rd_log_redact_add(path);
    const char *hdrs[] = {"Content-Type: application/json"};
    const char *secrets[] = {webhook_url, path, NULL};
    struct rd_http_request req = {
        .system = "slack",
        .method = "POST",
        .url = webhook_url,
        .log_path = host,
        .headers = hdrs,
        .nheaders = 1,
        .body = body,
        .body_len = strlen(body),
        /*
         * Not idempotent, and Slack offers neither an idempotency key nor a way to
         * read a hook's messages back: after a 5xx or a timeout the alert may have
         * been posted, so it is not repeated here. The error says so
         * (outcome_unknown); the caller decides whether a job retry may repeat it.
         */
        .deadline = deadline,
        .idempotent = false,
        .errmsg = slack_errmsg,
        .secrets = strlen(path) >= 4 ? secrets : NULL};
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "slack", "POST", host, b, &aid, err) != 0) {
        json_object_put(b);
        return -1;
    }
    struct rd_http_response resp;
    int rc = rd_http_do(http, &req, &resp, err);
    (void)rd_audit_ctx_end(audit, aid, b, rc == 0 ? "ok" : "failed", (int)resp.status,
                           rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    json_object_put(b);
    return rc;
}
