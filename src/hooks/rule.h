/* The routing-rule matcher: a rule's `match` ({channel, type, where}) is
 * compiled once from JSON, then evaluated against committed pubs, each pub
 * prepared once (its data tokenized) and shared by every rule. Pure: no I/O,
 * no threads; a compiled rule is immutable and may be evaluated by any number
 * of threads at once. Semantics: docs/webhooks.md, "Routing rules". */
#ifndef PL_RULE_H
#define PL_RULE_H

#include <stddef.h>

#include <jansson.h>

#include "util/sbuf.h"

/* Limits on one rule, so that a hostile rule costs bounded stack and CPU. */
#define RULE_MAX_DEPTH 16    /* nested predicates ($and/$or/$not), nested literals */
#define RULE_MAX_CLAUSES 256 /* comparisons and combinators in `where` */
#define RULE_MAX_PATH 256    /* bytes of a `where` path such as "data.items.0.id" */
#define RULE_MAX_SEGS 16     /* segments of a path after data/headers */
#define RULE_MAX_GLOBS 64    /* globs in `channel`, and in `type` */
#define RULE_MAX_VALUES 1024 /* JSON values in all operands together */

typedef struct rule_match rule_match;
typedef struct rule_event rule_event;

/* Why a rule did not compile: the JSON path of the offending member, rooted
 * at "match" (e.g. "match.where.data.severity.$inn", "match.channel[1]"),
 * and the reason. Both NUL-terminated, truncated if longer. */
typedef struct rule_error {
    char path[512];
    char reason[256];
} rule_error;

/* Compiles match (a JSON object; borrowed, not kept: operands are copied).
 * Returns PL_OK and *out (owned by the caller, freed with rule_match_free),
 * PL_EINVAL with err filled in (err may be NULL), or PL_ENOMEM. */
int rule_match_compile(const json_t *match, rule_match **out, rule_error *err);
/* NULL ok. */
void rule_match_free(rule_match *m);

/* One pub as the matcher sees it. channel and type are UTF-8, as a pub's
 * are (explanations quote them as JSON strings). Every pointer is borrowed by
 * rule_event_prepare and must stay alive and unchanged until the event is
 * prepared again or freed. */
typedef struct rule_event_fields {
    const char *tenant; /* not matched by rule_match: a route's tenant picks its rules */
    const char *channel;
    size_t channel_len;
    const char *type; /* NULL: the pub has no type */
    size_t type_len;
    const char *data; /* the pub's data: one JSON value */
    size_t data_len;
    const char *headers; /* the pub's headers: a JSON object; NULL: none */
    size_t headers_len;
} rule_event_fields;

/* An event is reusable: its buffers are kept from one prepare to the next.
 * rule_event_new returns NULL on allocation failure; free with
 * rule_event_free (NULL ok). */
rule_event *rule_event_new(void);
void rule_event_free(rule_event *ev);
/* Makes ev the view of f: tokenizes data and headers once for every rule
 * evaluated on it. Returns PL_OK, PL_EINVAL or PL_ELIMIT (data or headers is
 * not JSON, or too large or deep to read) or PL_ENOMEM; on failure the event
 * still evaluates, with the unreadable part treated as absent. */
int rule_event_prepare(rule_event *ev, const rule_event_fields *f);

/* 1 if the event matches all three layers of m, else 0. Never allocates;
 * ev may be shared by threads evaluating at once (it is only read). */
int rule_match_eval(const rule_match *m, const rule_event *ev);
/* Appends to out one JSON object saying, layer by layer and clause by clause,
 * what matched and why not (format: docs/webhooks.md). Every clause is
 * evaluated, none skipped. The verdict equals rule_match_eval's. Allocation
 * failure latches out->oom. */
void rule_match_explain(const rule_match *m, const rule_event *ev, sbuf *out);

#endif
