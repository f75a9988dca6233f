/*
 * The spend platform: SCIM 2.0 users and groups (upstream-apis §5) and its
 * approval-delegation API (DESIGN §8). Both share one bearer token.
 */
#ifndef ROSTERD_SCIM_H
#define ROSTERD_SCIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rosterd/audit.h"
#include "rosterd/http.h"

/* Strings owned by the struct (rd_scim_user_clear) or the list. */
struct rd_scim_user {
    char *id;
    char *user_name;
    bool active;
    char *external_id;
    char *manager_id;  /* enterprise manager.value or NULL */
    char *department;  /* enterprise department or NULL */
    char *given_name;  /* name.givenName or NULL */
    char *family_name; /* name.familyName or NULL */
    char **emails;     /* emails[].value */
    size_t nemails;
};

struct rd_scim_user_list {
    struct rd_scim_user *items;
    size_t count;
};

struct rd_scim_group {
    char *id;
    char *display_name;
    char **members; /* member user ids */
    size_t nmembers;
};

/* What an invitation sends; all borrowed, NULL fields are left out. */
struct rd_scim_new_user {
    const char *user_name; /* the e-mail address */
    const char *given_name;
    const char *family_name;
    const char *external_id; /* Personio id */
    const char *department;
    const char *manager_id;
    bool active;
};

void rd_scim_user_clear(struct rd_scim_user *u);
void rd_scim_user_list_free(struct rd_scim_user_list *l);
void rd_scim_group_clear(struct rd_scim_group *g);
/* Deep copy of g into out (clear it with rd_scim_group_clear). */
void rd_scim_group_copy(struct rd_scim_group *out, const struct rd_scim_group *g);

/*
 * A client for one platform. scim_base_url like "https://spend.example/scim/v2",
 * api_base_url like "https://spend.example/api/v1" (may be NULL when the
 * delegation API is not used). Borrows http, copies strings. Free with rd_scim_free.
 */
struct rd_scim;
struct rd_scim *rd_scim_new(struct rd_http_client *http, const char *scim_base_url,
                            const char *api_base_url, const char *token);
void rd_scim_free(struct rd_scim *s);
/* A client of the same platform and token that sends through http (another thread's). */
struct rd_scim *rd_scim_clone(const struct rd_scim *s, struct rd_http_client *http);
/* Page size of user listings (default 100). */
void rd_scim_set_page_size(struct rd_scim *s, int count);

/* The user with this userName (case-insensitive): *found false and out zeroed when none. */
int rd_scim_find_user(struct rd_scim *s, const char *user_name, double deadline, bool *found,
                      struct rd_scim_user *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * Users matching one filter `attr eq "value"` (attr: userName, emails.value or
 * externalId; string comparison as the server does it: case-insensitive for
 * userName and e-mails). out is a new list (free with rd_scim_user_list_free).
 */
int rd_scim_find_users(struct rd_scim *s, const char *attr, const char *value, double deadline,
                       struct rd_scim_user_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* GET /Users/{id}: *found false (out zeroed) on 404. Clear out with rd_scim_user_clear. */
int rd_scim_get_user(struct rd_scim *s, const char *id, double deadline, bool *found,
                     struct rd_scim_user *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Deep copy of u into out (clear it with rd_scim_user_clear). */
void rd_scim_user_copy(struct rd_scim_user *out, const struct rd_scim_user *u);

/* Every user, paged by startIndex/count. Free out with rd_scim_user_list_free. */
int rd_scim_list_users(struct rd_scim *s, double deadline, struct rd_scim_user_list *out,
                       struct rd_http_error *err) __attribute__((warn_unused_result));

/* POST /Users. out gets the created user (clear it). 409 uniqueness is a transient-class error
 * (DESIGN §7). */
int rd_scim_create_user(struct rd_scim *s, const struct rd_scim_new_user *u,
                        const struct rd_audit_ctx *audit, double deadline, struct rd_scim_user *out,
                        struct rd_http_error *err) __attribute__((warn_unused_result));

/* PATCH active. */
int rd_scim_set_active(struct rd_scim *s, const char *id, bool active,
                       const struct rd_audit_ctx *audit, double deadline, struct rd_http_error *err)
    __attribute__((warn_unused_result));
/* PATCH the enterprise manager; manager_id NULL removes it. */
int rd_scim_set_manager(struct rd_scim *s, const char *id, const char *manager_id,
                        const struct rd_audit_ctx *audit, double deadline,
                        struct rd_http_error *err) __attribute__((warn_unused_result));
/*
 * The same write in two steps, for a caller that records the audit row itself and
 * sends from another thread (handlers/writeback.c): the PatchOp rd_scim_set_manager
 * sends (new; json_object_put), its path ("/Users/<id>", appended to path), and the
 * PATCH of a body to a path without an audit row. *http_status: the last answer's
 * status, 0 when none came.
 */
struct json_object *rd_scim_manager_patch(const char *manager_id);
void rd_scim_patch_path(struct rd_buf *path, const char *kind, const char *id);
int rd_scim_send_patch(struct rd_scim *s, const char *path, struct json_object *body,
                       double deadline, int *http_status, struct rd_http_error *err)
    __attribute__((warn_unused_result));
/*
 * PATCH userName to email and emails to that one work address (an address change
 * in HR follows the person).
 */
int rd_scim_set_user_name(struct rd_scim *s, const char *id, const char *email,
                          const struct rd_audit_ctx *audit, double deadline,
                          struct rd_http_error *err) __attribute__((warn_unused_result));

/* PATCH the enterprise department; NULL removes it. */
int rd_scim_set_department(struct rd_scim *s, const char *id, const char *department,
                           const struct rd_audit_ctx *audit, double deadline,
                           struct rd_http_error *err) __attribute__((warn_unused_result));

/* The group with this displayName: *found false when none. Clear out with rd_scim_group_clear. */
int rd_scim_find_group(struct rd_scim *s, const char *display_name, double deadline, bool *found,
                       struct rd_scim_group *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

struct rd_scim_group_list {
    struct rd_scim_group *items;
    size_t count;
};

/* Every group with its members (paged like the users). Free out with rd_scim_group_list_free. */
int rd_scim_list_groups(struct rd_scim *s, double deadline, struct rd_scim_group_list *out,
                        struct rd_http_error *err) __attribute__((warn_unused_result));
void rd_scim_group_list_free(struct rd_scim_group_list *l);

/* PATCH members: add (op "add") or remove (op "remove") the given user ids. */
int rd_scim_group_add_members(struct rd_scim *s, const char *group_id, const char *const *user_ids,
                              size_t n, const struct rd_audit_ctx *audit, double deadline,
                              struct rd_http_error *err) __attribute__((warn_unused_result));
int rd_scim_group_remove_members(struct rd_scim *s, const char *group_id,
                                 const char *const *user_ids, size_t n,
                                 const struct rd_audit_ctx *audit, double deadline,
                                 struct rd_http_error *err) __attribute__((warn_unused_result));

/* SCIM error body → "detail (scimType)" into out. */
void rd_scim_error_message(const char *body, size_t len, char *out, size_t outlen);

/* ---- approval delegations (platform API, DESIGN §8); implemented in platform_api.c ---- */

struct rd_delegation {
    char *id;
    char *approver; /* as the platform returns it (user name / e-mail) */
    char *delegate;
    char *starts_at; /* ISO 8601 */
    char *ends_at;
    char *reason;
    char *external_id;
};

struct rd_delegation_list {
    struct rd_delegation *items;
    size_t count;
};

void rd_delegation_list_free(struct rd_delegation_list *l);
/* Deep copy of d into out (freed with the list it is put in). */
void rd_delegation_copy(struct rd_delegation *out, const struct rd_delegation *d);

/*
 * Creates a delegation. external_id makes it idempotent: when the platform
 * answers 409 for an external_id already used, the existing id is returned
 * (*existed set). *id_out is new (free with free()).
 */
int rd_platform_create_delegation(struct rd_scim *s, const char *approver, const char *delegate,
                                  const char *starts_at, const char *ends_at, const char *reason,
                                  const char *external_id, const struct rd_audit_ctx *audit,
                                  double deadline, char **id_out, bool *existed,
                                  struct rd_http_error *err) __attribute__((warn_unused_result));

/* Deletes a delegation; already gone (404) is success with *gone set. */
int rd_platform_delete_delegation(struct rd_scim *s, const char *id,
                                  const struct rd_audit_ctx *audit, double deadline, bool *gone,
                                  struct rd_http_error *err) __attribute__((warn_unused_result));

/* Delegations of one approver (NULL: all). Free out with rd_delegation_list_free. */
int rd_platform_list_delegations(struct rd_scim *s, const char *approver, double deadline,
                                 struct rd_delegation_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

#endif
