/*
 * Reply helpers of the admin listener, shared by admin.c (health, metrics) and
 * admin_api.c (the /admin/... routes).
 */
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "admin_internal.h"
#include "rosterd/mem.h"

void rd_admin_send(struct evhttp_request *req, int code, const char *ctype, const char *body,
                   size_t len)
{
    static const struct {
        int code;
        const char *reason;
    } reasons[] = {{200, "OK"},
                   {202, "Accepted"},
                   {400, "Bad Request"},
                   {403, "Forbidden"},
                   {404, "Not Found"},
                   {405, "Method Not Allowed"},
                   {500, "Internal Server Error"},
                   {503, "Service Unavailable"}};
    const char *reason = "Status";
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].code == code)
            reason = reasons[i].reason;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

void rd_admin_send_json(struct evhttp_request *req, int code, const char *json)
{
    struct rd_buf b = {0};
    rd_buf_puts(&b, json);
    rd_buf_putc(&b, '\n');
    rd_admin_send(req, code, "application/json", b.data, b.len);
    rd_buf_free(&b);
}

void rd_admin_send_error(struct evhttp_request *req, int code, const char *msg)
{
    struct rd_buf b = {0};
    rd_buf_puts(&b, "{\"error\":");
    rd_buf_json_str(&b, msg, strlen(msg));
    rd_buf_putc(&b, '}');
    rd_admin_send_json(req, code, b.data);
    rd_buf_free(&b);
}
