/*
 * The one place that lists every capability's handler table. A job's kind is
 * looked up here; a kind nobody registers is finished as done with 'no handler'.
 */
#include <string.h>

#include "rosterd/handler.h"

static const struct rd_capability *const capabilities[] = {
    &rd_cap_noop,       &rd_cap_identity, &rd_cap_person,    &rd_cap_deactivation,
    &rd_cap_attendance, &rd_cap_absence,  &rd_cap_reconcile,
};

const struct rd_capability *const *rd_handler_capabilities(size_t *n)
{
    *n = sizeof capabilities / sizeof capabilities[0];
    return capabilities;
}

const struct rd_handler *rd_handler_find(const char *kind)
{
    if (!kind)
        return NULL;
    for (size_t c = 0; c < sizeof capabilities / sizeof capabilities[0]; c++)
        for (size_t i = 0; i < capabilities[c]->nhandlers; i++)
            if (strcmp(capabilities[c]->handlers[i].kind, kind) == 0)
                return &capabilities[c]->handlers[i];
    return NULL;
}
