/* Explaining a routing rule against an event, for a user debugging a rule:
 * a JSON object with every layer and every clause, evaluated without
 * short-circuits, each with what the event held and why it did not match.
 * Off the hot path: it may allocate (the operands are printed by jansson). */
#include "hooks/rule_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
    [RULE_EQ] = "$eq",         [RULE_NEQ] = "$neq",
    [RULE_IN] = "$in",         [RULE_NIN] = "$nin",
    [RULE_EXISTS] = "$exists", [RULE_GT] = "$gt",
    [RULE_GTE] = "$gte",       [RULE_LT] = "$lt",
    [RULE_LTE] = "$lte",       [RULE_CONTAINS] = "$contains",
    [RULE_AND] = "$and",       [RULE_OR] = "$or",
    [RULE_NOT] = "$not",
};

/* Why a comparison that ran on a value did not hold. */
static const char *const no_reasons[] = {
    [RULE_EQ] = "not equal",       [RULE_NEQ] = "equal",
    [RULE_IN] = "not in the list", [RULE_NIN] = "in the list",
    [RULE_EXISTS] = "path exists", [RULE_GT] = "not greater",
    [RULE_GTE] = "less",           [RULE_LT] = "not less",
    [RULE_LTE] = "greater",        [RULE_CONTAINS] = "not contained",
};

static const char *kind_name(enum json_kind k)
{
    switch (k) {
    case JSON_KIND_OBJECT:
        return "an object";
    case JSON_KIND_ARRAY:
        return "an array";
    case JSON_KIND_STRING:
        return "a string";
    case JSON_KIND_NUMBER:
        return "a number";
    case JSON_KIND_TRUE:
    case JSON_KIND_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

static void put_json(sbuf *o, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!s) {
        o->oom = 1;
        return;
    }
    sbuf_puts(o, s);
    free(s);
}

static void put_bool(sbuf *o, const char *key, int b)
{
    sbuf_printf(o, "\"%s\":%s", key, b ? "true" : "false");
}

static void type_reason(sbuf *o, const rule_node *n, enum json_kind k)
{
    char buf[160];
    if (n->op == RULE_CONTAINS && k == JSON_KIND_STRING)
        snprintf(buf, sizeof(buf), "actual is a string: $contains on a string needs a string");
    else if (n->op == RULE_CONTAINS)
        snprintf(buf, sizeof(buf), "actual is %s: $contains needs a string or an array",
                 kind_name(k));
    else
        snprintf(buf, sizeof(buf), "actual is %s, expected %s", kind_name(k),
                 json_is_number(n->arg) ? "a number" : "a string");
    sbuf_puts(o, ",\"reason\":");
    sbuf_json_str(o, buf, strlen(buf));
}

static int explain_cmp(const rule_node *n, const rule_event *ev, sbuf *o)
{
    const rule_doc *d;
    int tok = rule_resolve(n, ev, &d);
    enum rule_res r = rule_compare(n, d, tok);
    sbuf_puts(o, "{\"path\":");
    sbuf_json_str(o, n->path, strlen(n->path));
    sbuf_printf(o, ",\"op\":\"%s\",", op_names[n->op]);
    put_bool(o, "matched", r == RULE_RES_MATCH);
    if (tok >= 0) {
        const char *p;
        size_t len;
        json_raw(&d->doc, tok, &p, &len);
        sbuf_puts(o, ",\"actual\":");
        sbuf_append(o, p, len);
    } else {
        sbuf_puts(o, ",\"found\":false");
    }
    sbuf_puts(o, ",\"expected\":");
    put_json(o, n->arg);
    if (r == RULE_RES_MISSING) sbuf_puts(o, ",\"reason\":\"path not found\"");
    if (r == RULE_RES_TYPE) type_reason(o, n, json_kind(&d->doc, tok));
    if (r == RULE_RES_NO) sbuf_printf(o, ",\"reason\":\"%s\"", no_reasons[n->op]);
    sbuf_putc(o, '}');
    return r == RULE_RES_MATCH;
}

static void explain_node(const rule_match *m, int i, const rule_event *ev, sbuf *o);

/* A predicate object: {"matched", "clauses": [...]}. */
static void explain_pred(const rule_match *m, int i, const rule_event *ev, sbuf *o)
{
    sbuf_putc(o, '{');
    put_bool(o, "matched", rule_node_eval(m, i, ev));
    sbuf_puts(o, ",\"clauses\":[");
    for (int k = m->nodes[i].kid; k >= 0; k = m->nodes[k].next) {
        explain_node(m, k, ev, o);
        if (m->nodes[k].next >= 0) sbuf_putc(o, ',');
    }
    sbuf_puts(o, "]}");
}

static void explain_node(const rule_match *m, int i, const rule_event *ev, sbuf *o)
{
    const rule_node *n = &m->nodes[i];
    if (n->op < RULE_AND) {
        explain_cmp(n, ev, o);
        return;
    }
    /* $and, $or and $not: their kids are predicates (RULE_AND nodes). */
    sbuf_printf(o, "{\"op\":\"%s\",", op_names[n->op]);
    put_bool(o, "matched", rule_node_eval(m, i, ev));
    sbuf_puts(o, ",\"predicates\":[");
    for (int k = n->kid; k >= 0; k = m->nodes[k].next) {
        explain_pred(m, k, ev, o);
        if (m->nodes[k].next >= 0) sbuf_putc(o, ',');
    }
    sbuf_puts(o, "]}");
}

/* A glob layer: {"matched", "actual", "globs", and "glob" (the first that
 * matched) or "reason"}. */
static int explain_layer(sbuf *o, char *const *list, size_t n, const char *s, size_t sn, char sep)
{
    int found = s ? rule_globs_find(list, n, s, sn, sep) : (n ? -1 : -2);
    sbuf_putc(o, '{');
    put_bool(o, "matched", found != -1);
    sbuf_puts(o, ",\"actual\":");
    if (s)
        sbuf_json_str(o, s, sn);
    else
        sbuf_puts(o, "null");
    sbuf_puts(o, ",\"globs\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) sbuf_putc(o, ',');
        sbuf_json_str(o, list[i], strlen(list[i]));
    }
    sbuf_putc(o, ']');
    if (found >= 0) {
        sbuf_puts(o, ",\"glob\":");
        sbuf_json_str(o, list[found], strlen(list[found]));
    } else if (found == -1) {
        sbuf_puts(o, s ? ",\"reason\":\"no glob matches\"" : ",\"reason\":\"the pub has no type\"");
    }
    sbuf_putc(o, '}');
    return found != -1;
}

void rule_match_explain(const rule_match *m, const rule_event *ev, sbuf *out)
{
    int all = rule_match_eval(m, ev);
    sbuf_putc(out, '{');
    put_bool(out, "matched", all);
    sbuf_puts(out, ",\"channel\":");
    explain_layer(out, m->chan, m->nchan, ev->channel, ev->channel_len, ':');
    sbuf_puts(out, ",\"type\":");
    explain_layer(out, m->type, m->ntype, ev->type, ev->type_len, '.');
    sbuf_puts(out, ",\"where\":");
    if (m->nnodes)
        explain_pred(m, 0, ev, out);
    else
        sbuf_puts(out, "{\"matched\":true,\"clauses\":[]}");
    sbuf_putc(out, '}');
}
