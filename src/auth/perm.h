/* Channel permissions: who may read (subscribe, history) and publish on a
 * channel, from the namespace's settings, the channel's user list
 * (`dm:#alice,bob`) and the connection token's `channels` and `publish`
 * claims. Pure: no token is verified here (a private channel asks the caller
 * to check a channel token, PERM_NEED_TOKEN), nothing is allocated. */
#ifndef PL_PERM_H
#define PL_PERM_H

#include <stddef.h>

#include "config/config.h"

/* What the connection token granted. Borrowed. */
typedef struct perm_claims {
    const char *user;
    char *const *channels; /* `channels` claim: patterns readable although private */
    size_t n_channels;
    char *const *publish; /* `publish` claim: patterns publishable whatever the namespace */
    size_t n_publish;
} perm_claims;

typedef enum perm_result {
    PERM_OK = 0,
    PERM_NO_NAMESPACE,  /* no namespace matches the channel */
    PERM_NOT_LISTED,    /* the channel has a user list without this user */
    PERM_NEED_TOKEN,    /* private channel, no claim matches: a channel token may grant it */
    PERM_PRIVATE,       /* private channel: publishing needs a `publish` claim */
    PERM_CLIENT_PUBLISH /* the namespace does not let clients publish */
} perm_result;

/* 1 if the channel names its users (`dm:#alice,bob`): only they may use it. */
int perm_has_user_list(const char *channel);
/* 1 if the channel has no user list or user is on it. */
int perm_user_listed(const char *channel, const char *user);
/* 1 if one of the n patterns (jwt_pattern_match) matches the channel. */
int perm_any_match(char *const *patterns, size_t n, const char *channel);
/* Read access to channel in namespace ns (NULL: none matched). */
perm_result perm_read(const cfg_namespace *ns, const char *channel, const perm_claims *who);
/* Publish access to channel in namespace ns (NULL: none matched). */
perm_result perm_publish(const cfg_namespace *ns, const char *channel, const perm_claims *who);
/* Why access was refused, for the error's detail ("" for PERM_OK). */
const char *perm_why(perm_result r);

#endif
