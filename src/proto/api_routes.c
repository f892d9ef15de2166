/* routes.test: a routing rule's match tried on a sample event and explained
 * clause by clause (hooks/rule.h), so that a rule can be debugged before it
 * routes anything. Pure: nothing is stored, published or sent. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "hooks/rule.h"
#include "proto/api_int.h"
#include "util/status.h"

/* The event's fields from params.event: channel (required), type, data
 * (any JSON, default null) and headers (an object). PE_OK, or the error
 * with *why naming the member. */
static proto_error event_fields(api_ctx *a, int ev, rule_event_fields *f, const char **why)
{
    static const char null_json[] = "null";
    memset(f, 0, sizeof(*f));
    f->tenant = a->tenant;
    if (proto_param_str(a->b, ev, "channel", &f->channel, &f->channel_len) != PROTO_PARAM_OK ||
        proto_channel_valid(f->channel, f->channel_len) != PE_OK) {
        *why = "event.channel: expected a valid channel name";
        return PE_BAD_REQUEST;
    }
    int r = proto_param_str(a->b, ev, "type", &f->type, &f->type_len);
    if (r == PROTO_PARAM_TYPE) {
        *why = "event.type: expected a string";
        return PE_BAD_REQUEST;
    }
    if (r == PROTO_PARAM_MISSING) f->type = NULL;
    if (proto_param_raw(a->b, ev, "data", &f->data, &f->data_len) != PROTO_PARAM_OK) {
        f->data = null_json;
        f->data_len = sizeof(null_json) - 1;
    }
    int hdr;
    r = proto_param_obj(a->b, ev, "headers", &hdr);
    if (r == PROTO_PARAM_TYPE) {
        *why = "event.headers: expected an object of strings";
        return PE_BAD_REQUEST;
    }
    if (r == PROTO_PARAM_OK) proto_param_raw(a->b, ev, "headers", &f->headers, &f->headers_len);
    return PE_OK;
}

/* params.match as a jansson tree (the rule compiler's input); NULL with
 * *why when it is missing or not an object. */
static json_t *match_tree(api_ctx *a, const char **why)
{
    const char *raw;
    size_t n;
    int tok;
    if (proto_param_obj(a->b, a->params, "match", &tok) != PROTO_PARAM_OK ||
        proto_param_raw(a->b, a->params, "match", &raw, &n) != PROTO_PARAM_OK) {
        *why = "match: expected an object {channel, type, where}";
        return NULL;
    }
    json_t *m = json_loadb(raw, n, JSON_REJECT_DUPLICATES, NULL);
    if (!m) *why = "match: not readable (duplicate keys, or an integer beyond 64 bits)";
    return m;
}

int api_routes_test(api_ctx *a)
{
    const char *why = NULL;
    rule_event_fields f;
    int ev;
    proto_error code = PE_OK;
    rule_match *m = NULL;
    rule_event *e = NULL;
    json_t *tree = NULL;
    sbuf o;
    sbuf_init(&o);
    if (proto_param_obj(a->b, a->params, "event", &ev) != PROTO_PARAM_OK) {
        code = PE_BAD_REQUEST;
        why = "event: expected an object {channel, type, data, headers}";
    }
    if (!code) code = event_fields(a, ev, &f, &why);
    if (!code && !(tree = match_tree(a, &why))) code = PE_BAD_REQUEST;
    rule_error err;
    char detail[sizeof(err.path) + sizeof(err.reason) + 2];
    int rc = code ? PL_OK : rule_match_compile(tree, &m, &err);
    if (rc == PL_EINVAL) {
        /* The rule's own words: the member's path, then what is wrong. */
        snprintf(detail, sizeof(detail), "%s: %s", err.path, err.reason);
        why = detail;
        code = PE_BAD_REQUEST;
    } else if (rc != PL_OK || (!code && !(e = rule_event_new()))) {
        code = PE_INTERNAL;
    }
    if (!code) {
        rule_event_prepare(e, &f); /* unreadable data or headers: treated as absent, and said */
        rule_match_explain(m, e, &o);
    }
    int answered = code ? api_error(a->h, a->conn_id, code, why) : api_result(a->h, a->conn_id, &o);
    sbuf_release(&o);
    rule_event_free(e);
    rule_match_free(m);
    json_decref(tree);
    return answered;
}
