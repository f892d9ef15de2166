/* The request/reply client commands over the HTTP API: publish, history,
 * presence, dlq and trace. Each builds the params of one method from its
 * options, calls it through client_api and prints the result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/client.h"
#include "cli/client_int.h"
#include "util/mem.h"

static const char *str(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long num(const json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

/* ---------------------------------------------------------------- publish */

static int publish_one(const client_args *a, const char *key, const char *chan, const char *text,
                       const char *where, const char *idem)
{
    char err[256];
    json_t *data = client_parse_data(text, err, sizeof(err));
    if (!data) {
        fprintf(stderr, "parley: %s%s\n", where, err);
        return 2;
    }
    json_t *p = json_object();
    json_object_set_new(p, "channel", json_string(chan));
    json_object_set_new(p, "data", data);
    if (a->cls) json_object_set_new(p, "class", json_string(a->cls));
    if (idem) json_object_set_new(p, "idempotency_key", json_string(idem));
    if (a->type) json_object_set_new(p, "type", json_string(a->type));
    json_t *res = client_api(a, key, "publish", p);
    json_decref(p);
    if (!res) return 1;
    if (a->json)
        client_print_json(res);
    else if (!num(res, "offset"))
        printf("%s ephemeral (not stored)\n", str(res, "id"));
    else
        printf("%s offset %lld epoch %s%s\n", str(res, "id"), num(res, "offset"), str(res, "epoch"),
               json_is_true(json_object_get(res, "duplicate")) ? " duplicate" : "");
    fflush(stdout);
    json_decref(res);
    return 0;
}

/* One publish per non-empty line; stops at the first failure. With
 * --idempotency-key K, line N is sent with key K:N, so running the same
 * input again publishes nothing twice. */
static int publish_stdin(const client_args *a, const char *key, const char *chan)
{
    char *line = NULL, where[64], idem[256];
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, stdin)) != -1) {
        lineno++;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (!n) continue;
        snprintf(where, sizeof(where), "stdin line %ld: ", lineno);
        if (a->idem) snprintf(idem, sizeof(idem), "%s:%ld", a->idem, lineno);
        rc = publish_one(a, key, chan, line, where, a->idem ? idem : NULL);
    }
    free(line);
    return rc;
}

int client_publish(int argc, char **argv)
{
    client_args a;
    if (client_parse(argc, argv, "ukdjciT", &a)) return 2;
    if (a.npos < 1) return client_usage(&a, "publish needs a CHANNEL");
    if (a.npos > 2) return client_usage(&a, "publish takes CHANNEL and one DATA (quote it)");
    char *key = client_key(&a);
    if (!key) return 2;
    int rc = a.npos == 1 || !strcmp(a.pos[1], "-")
                 ? publish_stdin(&a, key, a.pos[0])
                 : publish_one(&a, key, a.pos[0], a.pos[1], "", a.idem);
    pl_free(key);
    return rc;
}

/* ---------------------------------------------------------------- history */

/* --since OFFSET or OFFSET@EPOCH as the API's since object; NULL when
 * malformed. History reads after the offset whatever the epoch. */
static json_t *since_param(const char *since)
{
    char *end;
    unsigned long long off = strtoull(since, &end, 10);
    if (end == since || (*end && *end != '@') || since[0] == '-') return NULL;
    json_t *s = json_pack("{s:I}", "offset", (json_int_t)off);
    if (*end == '@') json_object_set_new(s, "epoch", json_string(end + 1));
    return s;
}

int client_history(int argc, char **argv)
{
    client_args a;
    if (client_parse(argc, argv, "ukdjnrs", &a)) return 2;
    if (a.npos != 1) return client_usage(&a, "history takes one CHANNEL");
    json_t *p = json_pack("{s:s}", "channel", a.pos[0]);
    if (a.limit) json_object_set_new(p, "limit", json_integer(a.limit));
    if (a.reverse) json_object_set_new(p, "reverse", json_true());
    if (a.since) {
        json_t *s = since_param(a.since);
        if (!s) {
            json_decref(p);
            return client_usage(&a, "--since wants OFFSET or OFFSET@EPOCH");
        }
        json_object_set_new(p, "since", s);
    }
    char *key = client_key(&a);
    json_t *res = key ? client_api(&a, key, "history", p) : NULL;
    json_decref(p);
    pl_free(key);
    if (!res) return key ? 1 : 2;
    size_t i;
    json_t *pub;
    json_array_foreach(json_object_get(res, "pubs"), i, pub)
    {
        if (a.json)
            client_print_json(pub);
        else
            client_print_pub(pub);
    }
    json_decref(res);
    return 0;
}

/* ------------------------------------------------------- presence and dlq */

/* Calls a paged method (params gets "cursor") until its cursor is 0, or
 * once when --limit is given; prints each element of the array `list`.
 * Returns the exit status; *count gets the number printed. */
static int paged(const client_args *a, const char *method, json_t *p, const char *list,
                 void (*print)(const json_t *), long *count)
{
    char *key = client_key(a);
    if (!key) return 2;
    json_int_t cursor = 0;
    int rc = 0;
    *count = 0;
    do {
        json_object_set_new(p, "cursor", json_integer(cursor));
        json_t *res = client_api(a, key, method, p);
        if (!res) {
            rc = 1;
            break;
        }
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(res, list), i, e)
        {
            if (a->json)
                client_print_json(e);
            else
                print(e);
            (*count)++;
        }
        cursor = json_integer_value(json_object_get(res, "cursor"));
        json_decref(res);
    } while (cursor && !a->limit);
    pl_free(key);
    return rc;
}

static void print_client(const json_t *c)
{
    printf("%s %s since %lld\n", str(c, "user"), str(c, "client"), num(c, "since"));
}

int client_presence(int argc, char **argv)
{
    client_args a;
    if (client_parse(argc, argv, "ukdjn", &a)) return 2;
    if (a.npos != 1) return client_usage(&a, "presence takes one CHANNEL");
    json_t *p = json_pack("{s:s}", "channel", a.pos[0]);
    if (a.limit) json_object_set_new(p, "limit", json_integer(a.limit));
    long n;
    int rc = paged(&a, "presence", p, "clients", print_client, &n);
    json_decref(p);
    if (!rc && !a.json) fprintf(stderr, "parley: %ld connection(s) subscribed\n", n);
    return rc;
}

/* A guaranteed pub's recipient names its user; a webhook delivery its
 * endpoint (and its delivery id, for webhooks.replay and attempts). */
static void print_entry(const json_t *e)
{
    int hook = !strcmp(str(e, "kind"), "webhook");
    printf("%lld %s %s %s%s %s attempts %lld failed_at %lld: %s\n", num(e, "id"), str(e, "pub_id"),
           str(e, "channel"), hook ? "webhook " : "", str(e, hook ? "endpoint" : "user"),
           str(e, "reason"), num(e, "attempts"), num(e, "failed_at"), str(e, "last_error"));
}

/* replay and purge: {"id":N}, the --channel filter, or {"all":true}. */
static int dlq_act(const client_args *a, const char *method)
{
    json_t *p = json_object();
    if (a->id) {
        char *end;
        long long id = strtoll(a->id, &end, 10);
        if (*end || id <= 0) {
            json_decref(p);
            return client_usage(a, "--id wants a DLQ entry id (a positive number)");
        }
        json_object_set_new(p, "id", json_integer(id));
    }
    if (a->channel) json_object_set_new(p, "channel", json_string(a->channel));
    if (a->all) json_object_set_new(p, "all", json_true());
    if (!json_object_size(p)) {
        json_decref(p);
        return client_usage(a, "say which entries: --id N, --channel C or --all");
    }
    char *key = client_key(a);
    json_t *res = key ? client_api(a, key, method, p) : NULL;
    json_decref(p);
    pl_free(key);
    if (!res) return key ? 1 : 2;
    if (a->json)
        client_print_json(res);
    else
        printf("%s %lld entr%s\n", strcmp(method, "dlq.replay") ? "purged" : "replayed",
               num(res, "count"), num(res, "count") == 1 ? "y" : "ies");
    json_decref(res);
    return 0;
}

int client_dlq(int argc, char **argv)
{
    client_args a;
    if (client_parse(argc, argv, "ukdjnCIa", &a)) return 2;
    const char *sub = a.npos ? a.pos[0] : "";
    if (a.npos > 1) return client_usage(&a, "dlq takes one of list, replay, purge");
    if (!strcmp(sub, "replay")) return dlq_act(&a, "dlq.replay");
    if (!strcmp(sub, "purge")) return dlq_act(&a, "dlq.purge");
    if (strcmp(sub, "list")) return client_usage(&a, "dlq takes one of list, replay, purge");
    if (a.id || a.all) return client_usage(&a, "dlq list filters by --channel only");
    json_t *p = json_object();
    if (a.channel) json_object_set_new(p, "channel", json_string(a.channel));
    if (a.limit) json_object_set_new(p, "limit", json_integer(a.limit));
    long n;
    int rc = paged(&a, "dlq.list", p, "entries", print_entry, &n);
    json_decref(p);
    if (!rc && !a.json)
        fprintf(stderr, "parley: %ld dead-letter entr%s\n", n, n == 1 ? "y" : "ies");
    return rc;
}

/* ------------------------------------------------------------------ trace */

/* Writes unix ms as ISO 8601 UTC with milliseconds (2026-12-07T14:03:07.123Z):
 * raw epoch milliseconds are what the API carries, but no one reads them. */
static void iso_ms(long long ms, char *out, size_t n)
{
    long long sec = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, n, "%lld", ms);
        return;
    }
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03lldZ", day, ms - sec * 1000);
}

/* One transition, with the time since the pub was accepted beside it so the
 * delay of each step reads without subtracting timestamps. */
static void print_transition(const json_t *t, long long accepted)
{
    char when[48];
    long long at = num(t, "at");
    iso_ms(at, when, sizeof(when));
    char since[32];
    snprintf(since, sizeof(since), "%+lld ms", at - accepted);
    const char *err = json_string_value(json_object_get(t, "error"));
    /* Right-aligned so that the states line up for offsets up to minutes. */
    printf("    %s  %10s  %-12s attempt %lld%s%s\n", when, since, str(t, "state"),
           num(t, "attempt"), err ? "  " : "", err ? err : "");
}

static void print_trace(const json_t *res)
{
    json_t *pub = json_object_get(res, "pub");
    long long accepted = num(res, "accepted_at");
    char when[48];
    iso_ms(accepted, when, sizeof(when));
    printf("pub %s\n  channel  %s\n  offset   %lld (epoch %s)\n  accepted %s, stored\n"
           "  fanout   %lld connection(s) since the server started\n",
           str(pub, "id"), str(pub, "channel"), num(pub, "offset"), str(pub, "epoch"), when,
           num(res, "fanout"));
    size_t i, k;
    json_t *d, *t;
    json_array_foreach(json_object_get(res, "deliveries"), i, d)
    {
        printf("  recipient %s: %s after %lld attempt(s)\n", str(d, "user"), str(d, "state"),
               num(d, "attempts"));
        json_array_foreach(json_object_get(d, "transitions"), k, t) print_transition(t, accepted);
    }
    json_array_foreach(json_object_get(res, "webhooks"), i, d)
    {
        printf("  webhook %s (delivery %s): %s after %lld attempt(s)\n", str(d, "endpoint"),
               str(d, "id"), str(d, "state"), num(d, "attempts"));
        json_array_foreach(json_object_get(d, "attempt_log"), k, t)
        {
            char when[48];
            long long at = num(t, "ts");
            iso_ms(at, when, sizeof(when));
            const char *err = json_string_value(json_object_get(t, "error"));
            printf("    %s  %+10lld ms  attempt %lld  status %lld%s%s\n", when, at - accepted,
                   num(t, "attempt"), num(t, "status"), err ? "  " : "", err ? err : "");
        }
    }
}

/* `parley trace ID`: what happened to one pub, readably. */
int client_trace(int argc, char **argv)
{
    client_args a;
    if (client_parse(argc, argv, "ukdj", &a)) return 2;
    if (a.npos != 1) return client_usage(&a, "trace takes one pub ID");
    char *key = client_key(&a);
    if (!key) return 2;
    json_t *p = json_pack("{s:s}", "id", a.pos[0]);
    json_t *res = client_api(&a, key, "trace", p);
    json_decref(p);
    pl_free(key);
    if (!res) return 1;
    if (a.json)
        client_print_json(res);
    else
        print_trace(res);
    json_decref(res);
    return 0;
}
