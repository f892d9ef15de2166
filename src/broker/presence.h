/* Channel presence shared by all workers: who is subscribed to which
 * channel (per tenant), with O(1) counts of clients and distinct users, and
 * the per-user typing throttle. Sharded by channel key with one mutex per
 * shard; presence changes are rare next to pubs, so this stays off the
 * delivery hot path. All strings passed in are copied. */
#ifndef PL_PRESENCE_H
#define PL_PRESENCE_H

#include <stddef.h>
#include <stdint.h>

#include "util/sbuf.h"

typedef struct presence presence;

presence *presence_new(void);
void presence_free(presence *p);

/* Adds a client to a channel. Returns 1 if added, 0 if it was already there,
 * -1 on allocation failure. info is a JSON object text or NULL. */
int presence_add(presence *p, const char *tenant, const char *channel, const char *client,
                 const char *user, const char *info, int64_t since_ms);
/* Removes a client; returns 1 if it was there, else 0. */
int presence_remove(presence *p, const char *tenant, const char *channel, const char *client);
/* Counts without walking the roster. */
void presence_stats(presence *p, const char *tenant, const char *channel, uint64_t *clients,
                    uint64_t *users);
/* Appends up to limit entries as JSON objects {"client","user","info","since"}
 * separated by commas, starting at cursor (0 first); returns the cursor of
 * the next page, or 0 when this was the last. */
uint64_t presence_page(presence *p, const char *tenant, const char *channel, uint64_t cursor,
                       uint32_t limit, sbuf *out, uint32_t *count);
/* Typing throttle: 1 if user may send a typing signal on channel now (and
 * records it), 0 if one was forwarded less than interval_ms ago. */
int presence_typing_allowed(presence *p, const char *tenant, const char *channel, const char *user,
                            int64_t now_ms, int64_t interval_ms);
/* Appends the tenant's channels with clients (optionally only names starting
 * with prefix) as {"channel","clients","users"} objects; returns the next
 * cursor or 0 at the end. */
uint64_t presence_channels(presence *p, const char *tenant, const char *prefix, uint64_t cursor,
                           uint32_t limit, sbuf *out, uint32_t *count);
/* The distinct users present in a channel: a pl_malloc'd array of
 * pl_malloc'd strings (caller frees), count returned. */
size_t presence_users(presence *p, const char *tenant, const char *channel, char ***out);
/* 1 if the user has a connection subscribed to the channel. */
int presence_has_user(presence *p, const char *tenant, const char *channel, const char *user);
/* Total entries (clients in channels), for metrics. */
uint64_t presence_entries(presence *p);

#endif
