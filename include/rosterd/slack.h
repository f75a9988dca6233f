/*
 * Slack incoming webhooks (upstream-apis §6). The webhook URL is the only
 * credential: it is never logged, only its host.
 */
#ifndef ROSTERD_SLACK_H
#define ROSTERD_SLACK_H

#include "rosterd/audit.h"
#include "rosterd/http.h"

struct json_object;

/*
 * Posts {"text": text, "blocks": blocks}. text is the notification fallback
 * and required; blocks (borrowed) may be NULL. 429 honours Retry-After inside
 * the deadline (else a transient error with retry_after_s); 5xx is retried;
 * other 4xx (invalid_payload, no_service, channel_is_archived …) are
 * permanent, with Slack's code in err->msg. Audited as system "slack" with
 * the host as path when audit is given.
 */
int rd_slack_post(struct rd_http_client *http, const char *webhook_url, const char *text,
                  struct json_object *blocks, const struct rd_audit_ctx *audit, double deadline,
                  struct rd_http_error *err) __attribute__((warn_unused_result));

/* Escapes &, < and > for Slack's mrkdwn. Returns a new string, free with free(). */
char *rd_slack_escape(const char *text);

#endif
