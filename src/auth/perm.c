/* Channel permissions; see perm.h. The checks run in a fixed order so the
 * reason a client is told is the first rule it broke. */
#include "auth/perm.h"

#include <string.h>

#include "auth/jwt.h"

int perm_has_user_list(const char *channel)
{
    return strchr(channel, '#') != NULL;
}

int perm_user_listed(const char *channel, const char *user)
{
    const char *h = strchr(channel, '#');
    if (!h) return 1;
    size_t ul = strlen(user);
    for (const char *p = h + 1; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == ul && !memcmp(p, user, n)) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

int perm_any_match(char *const *patterns, size_t n, const char *channel)
{
    size_t len = strlen(channel);
    for (size_t i = 0; i < n; i++)
        if (jwt_pattern_match(patterns[i], channel, len)) return 1;
    return 0;
}

perm_result perm_read(const cfg_namespace *ns, const char *channel, const perm_claims *who)
{
    if (!ns) return PERM_NO_NAMESPACE;
    if (!perm_user_listed(channel, who->user)) return PERM_NOT_LISTED;
    if (ns->is_private && !perm_any_match(who->channels, who->n_channels, channel))
        return PERM_NEED_TOKEN;
    return PERM_OK;
}

perm_result perm_publish(const cfg_namespace *ns, const char *channel, const perm_claims *who)
{
    if (!ns) return PERM_NO_NAMESPACE;
    if (!perm_user_listed(channel, who->user)) return PERM_NOT_LISTED;
    if (perm_any_match(who->publish, who->n_publish, channel)) return PERM_OK;
    if (ns->is_private) return PERM_PRIVATE;
    if (!ns->client_publish) return PERM_CLIENT_PUBLISH;
    return PERM_OK;
}

const char *perm_why(perm_result r)
{
    switch (r) {
    case PERM_OK:
        return "";
    case PERM_NO_NAMESPACE:
        return "no namespace matches the channel";
    case PERM_NOT_LISTED:
        return "not in the channel's user list";
    case PERM_NEED_TOKEN:
        return "private channel: no channels claim matches and no valid channel token";
    case PERM_PRIVATE:
        return "private channel: publishing needs a publish claim";
    case PERM_CLIENT_PUBLISH:
        return "the namespace does not allow client publish";
    }
    return "denied";
}
