/* Unit tests for the routing-rule matcher (hooks/rule.h): one table of
 * rules x events with the expected verdict, covering every operator both
 * ways, the globs of both layers and the edges of paths and equality; a
 * table of refused rules with the exact path and reason; and explanations
 * read back with jansson. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hooks/rule.h"
#include "util/mem.h"
#include "util/status.h"

/* The event most rows use. */
#define EV_DATA                                                                                    \
    "{\"severity\":\"high\",\"count\":3,\"ratio\":0.5,\"ok\":true,\"none\":null,"                  \
    "\"name\":\"caf\\u00e9 db\",\"tags\":[\"db\",\"eu\",1],\"items\":[{\"id\":7},{\"id\":8}],"     \
    "\"nested\":{\"a\":{\"b\":1.0}},\"big\":12345678901234567890,\"empty\":{}}"
#define EV_HEADERS "{\"x-source\":\"grafana\",\"x.trace\":\"t1\"}"

typedef struct row {
    const char *rule;    /* the `match` object */
    const char *channel; /* NULL: "alerts:eu:db1" */
    const char *type;    /* NULL: none; "-" : "incident.open" */
    const char *data;    /* NULL: EV_DATA */
    int want;
} row;

#define T "-"
static const row rows[] = {
    /* empty match, absent layers */
    {"{}", NULL, NULL, NULL, 1},
    {"{\"channel\":[],\"type\":[],\"where\":{}}", NULL, NULL, NULL, 1},
    /* channel globs */
    {"{\"channel\":\"alerts:**\"}", NULL, NULL, NULL, 1},
    {"{\"channel\":\"alerts:**\"}", "alerts:eu", NULL, NULL, 1},
    {"{\"channel\":\"alerts:**\"}", "alerts", NULL, NULL, 0},
    {"{\"channel\":\"alerts:**\"}", "alertsx:eu", NULL, NULL, 0},
    {"{\"channel\":\"alerts:*:db1\"}", NULL, NULL, NULL, 1},
    {"{\"channel\":\"alerts:*:db1\"}", "alerts:eu:db2", NULL, NULL, 0},
    {"{\"channel\":\"alerts:*:db1\"}", "alerts:eu:x:db1", NULL, NULL, 0},
    {"{\"channel\":\"alerts:*\"}", NULL, NULL, NULL, 0},
    {"{\"channel\":\"alerts:*\"}", "alerts:eu", NULL, NULL, 1},
    {"{\"channel\":\"alerts:eu:db1\"}", NULL, NULL, NULL, 1},
    {"{\"channel\":\"alerts:eu\"}", NULL, NULL, NULL, 0},
    {"{\"channel\":\"alerts:eu:db\"}", NULL, NULL, NULL, 0},
    {"{\"channel\":\"**\"}", "x", NULL, NULL, 1},
    {"{\"channel\":\"**\"}", NULL, NULL, NULL, 1},
    {"{\"channel\":\"*\"}", "lobby", NULL, NULL, 1},
    {"{\"channel\":\"*\"}", "chat:lobby", NULL, NULL, 0},
    {"{\"channel\":\"a:*:c\"}", "a::c", NULL, NULL, 1}, /* '*' takes an empty segment */
    {"{\"channel\":\"a::c\"}", "a::c", NULL, NULL, 1},
    {"{\"channel\":\"a::c\"}", "a:b:c", NULL, NULL, 0},
    {"{\"channel\":\"a:**\"}", "a:", NULL, NULL, 1},
    {"{\"channel\":[\"chat:*\",\"alerts:**\"]}", NULL, NULL, NULL, 1},
    {"{\"channel\":[\"chat:*\",\"ops:**\"]}", NULL, NULL, NULL, 0},
    /* type globs */
    {"{\"type\":\"incident.*\"}", NULL, T, NULL, 1},
    {"{\"type\":\"incident.*\"}", NULL, "incident", NULL, 0},
    {"{\"type\":\"incident.*\"}", NULL, "incident.open.late", NULL, 0},
    {"{\"type\":\"incident.**\"}", NULL, "incident.open.late", NULL, 1},
    {"{\"type\":\"incident.**\"}", NULL, "incident", NULL, 0},
    {"{\"type\":\"incident.op*\"}", NULL, T, NULL, 1},
    {"{\"type\":\"incident.*en\"}", NULL, T, NULL, 1},
    {"{\"type\":\"incident.*x*\"}", NULL, T, NULL, 0},
    {"{\"type\":\"in*.open\"}", NULL, T, NULL, 1},
    {"{\"type\":[\"deploy.*\",\"incident.open\"]}", NULL, T, NULL, 1},
    {"{\"type\":[\"deploy.*\"]}", NULL, T, NULL, 0},
    {"{\"type\":\"incident.*\"}", NULL, NULL, NULL, 0}, /* a pub without a type */
    {"{\"type\":\"**\"}", NULL, NULL, NULL, 0},
    {"{\"type\":\"**\"}", NULL, T, NULL, 1},
    /* $eq and the shorthand */
    {"{\"where\":{\"data.severity\":\"high\"}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.severity\":\"low\"}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.severity\":{\"$eq\":\"high\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.severity\":{\"$eq\":\"hig\"}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.count\":3.0}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.nested.a.b\":1}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.count\":\"3\"}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.ok\":true}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.ok\":1}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.none\":null}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.missing\":null}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.name\":\"caf\\u00e9 db\"}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.name\":\"café db\"}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.name\":\"cafe db\"}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.tags\":[\"db\",\"eu\",1.0]}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.tags\":[\"eu\",\"db\",1]}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.tags\":[\"db\",\"eu\"]}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.nested\":{\"$eq\":{\"a\":{\"b\":1}}}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.nested\":{\"a\":{\"b\":1}}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.nested\":{\"a\":{\"b\":2}}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.nested\":{\"a\":{\"b\":1,\"c\":1}}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.empty\":{}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.big\":12345678901234567890.0}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data\":{\"$eq\":5}}}", NULL, NULL, "5", 1},
    {"{\"where\":{\"data\":\"x\"}}", NULL, NULL, "\"x\"", 1},
    /* $neq */
    {"{\"where\":{\"data.severity\":{\"$neq\":\"low\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.severity\":{\"$neq\":\"high\"}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.missing\":{\"$neq\":\"high\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.ratio\":{\"$neq\":0.50}}}", NULL, NULL, NULL, 0},
    /* $in, $nin */
    {"{\"where\":{\"data.severity\":{\"$in\":[\"high\",\"critical\"]}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.severity\":{\"$in\":[\"low\",\"medium\"]}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.severity\":{\"$in\":[]}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.count\":{\"$in\":[\"3\",3.0]}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.missing\":{\"$in\":[null]}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.severity\":{\"$nin\":[\"low\"]}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.severity\":{\"$nin\":[\"low\",\"high\"]}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.missing\":{\"$nin\":[\"low\"]}}}", NULL, NULL, NULL, 1},
    /* $exists */
    {"{\"where\":{\"data.none\":{\"$exists\":true}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.missing\":{\"$exists\":true}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.missing\":{\"$exists\":false}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.count\":{\"$exists\":false}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"headers.x-source\":{\"$exists\":true}}}", NULL, NULL, NULL, 1},
    /* $gt, $gte, $lt, $lte: numbers */
    {"{\"where\":{\"data.count\":{\"$gt\":2}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.count\":{\"$gt\":3}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.count\":{\"$gte\":3.0}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.count\":{\"$gte\":3.5}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.ratio\":{\"$lt\":0.75}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.ratio\":{\"$lt\":0.5}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.ratio\":{\"$lte\":0.5}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.ratio\":{\"$lte\":-1}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.count\":{\"$gt\":1,\"$lt\":5}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.count\":{\"$gt\":1,\"$lt\":3}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.big\":{\"$gt\":1e19}}}", NULL, NULL, NULL, 1},
    /* ... strings, bytewise; and mismatched kinds never compare */
    {"{\"where\":{\"data.severity\":{\"$gt\":\"h\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.severity\":{\"$gte\":\"high\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.severity\":{\"$lt\":\"high\"}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.severity\":{\"$lt\":\"highz\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.name\":{\"$gt\":\"caf\\u00e8\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.name\":{\"$lt\":\"cafz\"}}}", NULL, NULL, NULL, 0}, /* é > z bytewise */
    {"{\"where\":{\"data.severity\":{\"$gt\":1}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.severity\":{\"$lte\":1}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.count\":{\"$gt\":\"1\"}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.missing\":{\"$lt\":1}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.ok\":{\"$gte\":0}}}", NULL, NULL, NULL, 0},
    /* $contains */
    {"{\"where\":{\"data.name\":{\"$contains\":\"é d\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.name\":{\"$contains\":\"xyz\"}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.name\":{\"$contains\":\"\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.tags\":{\"$contains\":\"eu\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.tags\":{\"$contains\":1.0}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.tags\":{\"$contains\":\"us\"}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.items\":{\"$contains\":{\"id\":8}}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.name\":{\"$contains\":1}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.count\":{\"$contains\":3}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.missing\":{\"$contains\":\"a\"}}}", NULL, NULL, NULL, 0},
    /* paths: array indexes, missing steps, headers */
    {"{\"where\":{\"data.items.0.id\":7}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.items.1.id\":{\"$gt\":7}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.items.2.id\":{\"$exists\":false}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.items.01.id\":7}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.items.id\":7}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"data.severity.x\":{\"$exists\":false}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.0\":\"a\"}}", NULL, NULL, "[\"a\"]", 1},
    {"{\"where\":{\"data.0\":\"a\"}}", NULL, NULL, "{\"0\":\"a\"}", 1},
    {"{\"where\":{\"data.a\":1}}", NULL, NULL, "{\"a\":2,\"a\":1}", 1}, /* last wins */
    {"{\"where\":{\"headers.x-source\":\"grafana\"}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"headers.x-source\":\"Grafana\"}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"headers.x.trace\":\"t1\"}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"headers.x-missing\":{\"$exists\":false}}}", NULL, NULL, NULL, 1},
    /* combinators */
    {"{\"where\":{\"$or\":[{\"data.severity\":\"low\"},{\"data.count\":3}]}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"$or\":[{\"data.severity\":\"low\"},{\"data.count\":4}]}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"$and\":[{\"data.severity\":\"high\"},{\"data.count\":3}]}}", NULL, NULL, NULL,
     1},
    {"{\"where\":{\"$and\":[{\"data.severity\":\"high\"},{\"data.count\":4}]}}", NULL, NULL, NULL,
     0},
    {"{\"where\":{\"$not\":{\"data.severity\":\"low\"}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"$not\":{\"data.severity\":\"high\",\"data.count\":3}}}", NULL, NULL, NULL, 0},
    {"{\"where\":{\"$not\":{\"data.severity\":\"high\",\"data.count\":4}}}", NULL, NULL, NULL, 1},
    {"{\"where\":{\"data.ok\":true,\"$or\":[{\"$not\":{\"data.count\":{\"$lt\":3}}},"
     "{\"$and\":[{\"data.x\":1}]}]}}",
     NULL, NULL, NULL, 1},
    {"{\"where\":{\"$or\":[{\"$and\":[{\"data.count\":3},{\"$not\":{\"headers.x-source\":"
     "\"grafana\"}}]},{\"data.tags.2\":{\"$gt\":1}}]}}",
     NULL, NULL, NULL, 0},
    /* three layers */
    {"{\"channel\":\"alerts:**\",\"type\":[\"incident.*\"],\"where\":{\"data.severity\":{\"$in\":"
     "[\"high\",\"critical\"]}}}",
     NULL, T, NULL, 1},
    {"{\"channel\":\"alerts:**\",\"type\":[\"incident.*\"],\"where\":{\"data.severity\":{\"$in\":"
     "[\"high\",\"critical\"]}}}",
     "ops:eu", T, NULL, 0},
};

static rule_event *prepare(const char *channel, const char *type, const char *data)
{
    rule_event *ev = rule_event_new();
    assert_non_null(ev);
    if (!channel) channel = "alerts:eu:db1";
    if (type && !strcmp(type, T)) type = "incident.open";
    if (!data) data = EV_DATA;
    rule_event_fields f = {.tenant = "acme",
                           .channel = channel,
                           .channel_len = strlen(channel),
                           .type = type,
                           .type_len = type ? strlen(type) : 0,
                           .data = data,
                           .data_len = strlen(data),
                           .headers = EV_HEADERS,
                           .headers_len = strlen(EV_HEADERS)};
    assert_int_equal(rule_event_prepare(ev, &f), PL_OK);
    return ev;
}

static rule_match *compile(const char *rule)
{
    json_error_t jerr;
    json_t *j = json_loads(rule, 0, &jerr);
    if (!j) fail_msg("bad test JSON %s: %s", rule, jerr.text);
    rule_match *m = NULL;
    rule_error err;
    int rc = rule_match_compile(j, &m, &err);
    json_decref(j);
    if (rc) fail_msg("%s: %s: %s", rule, err.path, err.reason);
    return m;
}

static void the_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const row *r = &rows[i];
        rule_match *m = compile(r->rule);
        rule_event *ev = prepare(r->channel, r->type, r->data);
        int got = rule_match_eval(m, ev);
        /* The explanation's verdict is the evaluation's. */
        sbuf o;
        sbuf_init(&o);
        rule_match_explain(m, ev, &o);
        /* INT_AS_REAL: jansson refuses integers beyond 64 bits, JSON does not. */
        json_t *x = json_loads(o.data, JSON_DECODE_INT_AS_REAL, NULL);
        if (!x) fail_msg("row %zu: explanation is not JSON: %s", i, o.data);
        int xm = json_is_true(json_object_get(x, "matched"));
        if (got != r->want || xm != got)
            fail_msg("row %zu: %s on %s: got %d (explained %d), want %d\n%s", i, r->rule,
                     r->data ? r->data : "EV_DATA", got, xm, r->want, o.data);
        json_decref(x);
        sbuf_release(&o);
        rule_event_free(ev);
        rule_match_free(m);
    }
}

typedef struct bad {
    const char *rule;
    const char *path;
    const char *reason; /* a prefix of the reason */
} bad;

static const bad bads[] = {
    {"[]", "match", "expected an object {channel, type, where}"},
    {"{\"chanel\":\"a\"}", "match.chanel", "unknown key (expected channel, type or where)"},
    {"{\"channel\":\"a:**:b\"}", "match.channel", "invalid glob: '**' must be the last segment"},
    {"{\"channel\":[\"a:*\",\"a:b*\"]}", "match.channel[1]",
     "invalid glob: '*' must be a whole segment"},
    {"{\"channel\":\"\"}", "match.channel", "invalid glob: empty"},
    {"{\"channel\":5}", "match.channel", "expected a glob string or an array of them"},
    {"{\"channel\":[\"a\",5]}", "match.channel[1]", "expected a glob string"},
    {"{\"type\":\"a.b**\"}", "match.type", "invalid glob: '**' must be a whole segment"},
    {"{\"type\":[\"**.a\"]}", "match.type[0]", "invalid glob: '**' must be the last segment"},
    {"{\"where\":[]}", "match.where", "expected a predicate object"},
    {"{\"where\":{\"data.severity\":{\"$inn\":[1]}}}", "match.where.data.severity.$inn",
     "unknown operator $inn (expected one of $eq, $neq, $in, $nin, $exists, $gt, $gte, $lt, "
     "$lte, $contains)"},
    {"{\"where\":{\"data.s\":{\"$in\":\"high\"}}}", "match.where.data.s.$in",
     "$in needs an array of values"},
    {"{\"where\":{\"data.s\":{\"$nin\":{}}}}", "match.where.data.s.$nin",
     "$nin needs an array of values"},
    {"{\"where\":{\"data.s\":{\"$gt\":[1]}}}", "match.where.data.s.$gt",
     "$gt needs a number or a string"},
    {"{\"where\":{\"data.s\":{\"$lte\":null}}}", "match.where.data.s.$lte",
     "$lte needs a number or a string"},
    {"{\"where\":{\"data.s\":{\"$exists\":1}}}", "match.where.data.s.$exists",
     "$exists needs true or false"},
    {"{\"where\":{\"$or\":[]}}", "match.where.$or",
     "$or needs a non-empty array of predicate objects"},
    {"{\"where\":{\"$and\":{}}}", "match.where.$and",
     "$and needs a non-empty array of predicate objects"},
    {"{\"where\":{\"$or\":[{\"data.a\":1},2]}}", "match.where.$or[1]",
     "a predicate must be an object"},
    {"{\"where\":{\"$not\":[{\"data.a\":1}]}}", "match.where.$not",
     "$not needs one predicate object"},
    {"{\"where\":{\"$nor\":[{\"data.a\":1}]}}", "match.where.$nor", "unknown combinator $nor"},
    {"{\"where\":{\"$or\":[{\"data.a\":{\"$eq\":1,\"b\":2}}]}}", "match.where.$or[0].data.a.b",
     "mixes operators and plain keys"},
    {"{\"where\":{\"data.a\":{\"$or\":[]}}}", "match.where.data.a.$or",
     "$or combines predicates: write it beside paths"},
    {"{\"where\":{\"severity\":1}}", "match.where.severity",
     "unknown path: a path starts with 'data' or 'headers'"},
    {"{\"where\":{\"datax.a\":1}}", "match.where.datax.a", "unknown path"},
    {"{\"where\":{\"data..a\":1}}", "match.where.data..a", "empty segment in path"},
    {"{\"where\":{\"data.a.\":1}}", "match.where.data.a.", "empty segment in path"},
    {"{\"where\":{\"data.1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17\":1}}",
     "match.where.data.1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17", "path has over 16 segments"},
    {"{\"where\":{\"data.a\":{\"$eq\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}}}",
     "match.where.data.a.$eq", "value nested too deep: at most 16 levels"},
    {"{\"where\":{\"$or\":[{\"data.b\":1},{\"$not\":{\"$and\":[{\"data.a\":{\"$exists\":\"yes\"}}]}"
     "}]}}",
     "match.where.$or[1].$not.$and[0].data.a.$exists", "$exists needs true or false"},
};

static void refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        json_t *j = json_loads(bads[i].rule, JSON_DECODE_ANY, NULL);
        if (!j) fail_msg("bad test JSON %s", bads[i].rule);
        rule_match *m = (rule_match *)1;
        rule_error err = {{0}, {0}};
        int rc = rule_match_compile(j, &m, &err);
        json_decref(j);
        if (rc != PL_EINVAL || m || strcmp(err.path, bads[i].path) ||
            strncmp(err.reason, bads[i].reason, strlen(bads[i].reason)))
            fail_msg("bad %zu %s: rc %d, path '%s' reason '%s'; want '%s' '%s'", i, bads[i].rule,
                     rc, err.path, err.reason, bads[i].path, bads[i].reason);
    }
}

/* `where` with nots levels of $not around {"data.a": 1}: predicates nest
 * nots + 1 deep. */
static json_t *nested_nots(int nots)
{
    char buf[8192];
    size_t n = 0;
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"where\":");
    for (int i = 0; i < nots; i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"$not\":");
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "{\"data.a\":1}");
    for (int i = 0; i < nots + 1; i++)
        buf[n++] = '}';
    buf[n] = '\0';
    json_t *j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    return j;
}

/* Rules at and past the nesting limit, and one with too many clauses. */
static void limits(void **state)
{
    (void)state;
    rule_match *m;
    rule_error err;
    json_t *j = nested_nots(15); /* 16 levels: accepted; an odd count of nots */
    assert_int_equal(rule_match_compile(j, &m, &err), PL_OK);
    rule_event *ev = prepare(NULL, NULL, "{\"a\":1}");
    assert_int_equal(rule_match_eval(m, ev), 0);
    rule_event_free(ev);
    rule_match_free(m);
    json_decref(j);
    j = nested_nots(16);
    assert_int_equal(rule_match_compile(j, &m, &err), PL_EINVAL);
    assert_string_equal(err.path, "match.where.$not.$not.$not.$not.$not.$not.$not.$not.$not.$not."
                                  "$not.$not.$not.$not.$not.$not");
    assert_string_equal(err.reason, "predicates nested too deep: at most 16 levels");
    assert_non_null(strstr(err.path, "match.where.$not.$not."));
    json_decref(j);

    j = json_object();
    json_t *w = json_object();
    for (int i = 0; i < 300; i++) {
        char k[32];
        snprintf(k, sizeof(k), "data.k%d", i);
        json_object_set_new(w, k, json_integer(i));
    }
    json_object_set_new(j, "where", w);
    assert_int_equal(rule_match_compile(j, &m, &err), PL_EINVAL);
    assert_string_equal(err.reason, "too many clauses: at most 256");
    assert_string_equal(err.path, "match.where.data.k255");
    json_decref(j);
}

static json_t *explain(const char *rule, const char *channel, const char *type)
{
    rule_match *m = compile(rule);
    rule_event *ev = prepare(channel, type, NULL);
    sbuf o;
    sbuf_init(&o);
    rule_match_explain(m, ev, &o);
    assert_false(o.oom);
    json_error_t jerr;
    json_t *x = json_loads(o.data, 0, &jerr);
    if (!x) fail_msg("not JSON (%s): %s", jerr.text, o.data);
    sbuf_release(&o);
    rule_event_free(ev);
    rule_match_free(m);
    return x;
}

static void explanations(void **state)
{
    (void)state;
    json_t *x = explain("{\"channel\":\"alerts:**\",\"type\":[\"incident.*\"],\"where\":"
                        "{\"data.severity\":{\"$in\":[\"low\",\"critical\"]}}}",
                        NULL, T);
    json_t *want = json_loads(
        "{\"matched\":false,"
        "\"channel\":{\"matched\":true,\"actual\":\"alerts:eu:db1\",\"globs\":[\"alerts:**\"],"
        "\"glob\":\"alerts:**\"},"
        "\"type\":{\"matched\":true,\"actual\":\"incident.open\",\"globs\":[\"incident.*\"],"
        "\"glob\":\"incident.*\"},"
        "\"where\":{\"matched\":false,\"clauses\":[{\"path\":\"data.severity\",\"op\":\"$in\","
        "\"matched\":false,\"actual\":\"high\",\"expected\":[\"low\",\"critical\"],"
        "\"reason\":\"not in the list\"}]}}",
        0, NULL);
    assert_true(json_equal(x, want));
    json_decref(x);
    json_decref(want);

    /* Absent layers, a pub without a type, a missing path, a kind mismatch,
     * and combinators with their predicates. */
    x = explain("{\"channel\":[\"ops:*\"],\"type\":\"a.*\",\"where\":{\"data.nope\":1,"
                "\"data.severity\":{\"$gt\":2},\"$or\":[{\"data.count\":3},{\"$not\":"
                "{\"data.ok\":true}}]}}",
                NULL, NULL);
    want = json_loads(
        "{\"matched\":false,"
        "\"channel\":{\"matched\":false,\"actual\":\"alerts:eu:db1\",\"globs\":[\"ops:*\"],"
        "\"reason\":\"no glob matches\"},"
        "\"type\":{\"matched\":false,\"actual\":null,\"globs\":[\"a.*\"],"
        "\"reason\":\"the pub has no type\"},"
        "\"where\":{\"matched\":false,\"clauses\":["
        "{\"path\":\"data.nope\",\"op\":\"$eq\",\"matched\":false,\"found\":false,"
        "\"expected\":1,\"reason\":\"path not found\"},"
        "{\"path\":\"data.severity\",\"op\":\"$gt\",\"matched\":false,\"actual\":\"high\","
        "\"expected\":2,\"reason\":\"actual is a string, expected a number\"},"
        "{\"op\":\"$or\",\"matched\":true,\"predicates\":["
        "{\"matched\":true,\"clauses\":[{\"path\":\"data.count\",\"op\":\"$eq\",\"matched\":true,"
        "\"actual\":3,\"expected\":3}]},"
        "{\"matched\":false,\"clauses\":[{\"op\":\"$not\",\"matched\":false,\"predicates\":["
        "{\"matched\":true,\"clauses\":[{\"path\":\"data.ok\",\"op\":\"$eq\",\"matched\":true,"
        "\"actual\":true,\"expected\":true}]}]}]}]}]}}",
        0, NULL);
    if (!json_equal(x, want)) {
        char *s = json_dumps(x, JSON_COMPACT);
        fail_msg("got %s", s);
    }
    json_decref(x);
    json_decref(want);

    x = explain("{}", "lobby", NULL);
    want = json_loads("{\"matched\":true,\"channel\":{\"matched\":true,\"actual\":\"lobby\","
                      "\"globs\":[]},\"type\":{\"matched\":true,\"actual\":null,\"globs\":[]},"
                      "\"where\":{\"matched\":true,\"clauses\":[]}}",
                      0, NULL);
    assert_true(json_equal(x, want));
    json_decref(x);
    json_decref(want);
}

/* Unreadable data and headers are absent: data paths are missing. */
static void unreadable_event(void **state)
{
    (void)state;
    rule_match *m = compile("{\"where\":{\"data.a\":{\"$exists\":false},\"headers.h\":"
                            "{\"$exists\":false}}}");
    rule_event *ev = rule_event_new();
    rule_event_fields f = {.channel = "a:b",
                           .channel_len = 3,
                           .data = "{\"a\":",
                           .data_len = 5,
                           .headers = "[1]",
                           .headers_len = 3};
    assert_int_equal(rule_event_prepare(ev, &f), PL_EINVAL);
    assert_int_equal(rule_match_eval(m, ev), 1);
    f.data = "{\"a\":1} {}";
    f.data_len = strlen(f.data);
    assert_int_equal(rule_event_prepare(ev, &f), PL_EINVAL);
    assert_int_equal(rule_match_eval(m, ev), 1);
    /* The event is reused: prepared again it reads the new pub. */
    f.data = "{\"a\":\"\\u0041\"}";
    f.data_len = strlen(f.data);
    f.headers = NULL;
    assert_int_equal(rule_event_prepare(ev, &f), PL_OK);
    assert_int_equal(rule_match_eval(m, ev), 0);
    rule_event_free(ev);
    rule_match_free(m);
}

/* Allocation failures while compiling are PL_ENOMEM, never a leak or crash. */
static void out_of_memory(void **state)
{
    (void)state;
    json_t *j = json_loads("{\"channel\":[\"a:*\",\"b:**\"],\"type\":\"x.*\",\"where\":{\"$or\":"
                           "[{\"data.a\":{\"$in\":[1,2]}},{\"headers.h\":\"v\"}]}}",
                           0, NULL);
    int ok = 0;
    for (long n = 0; n < 64 && !ok; n++) {
        rule_match *m = NULL;
        rule_error err;
        pl_mem_fail_after(n);
        int rc = rule_match_compile(j, &m, &err);
        pl_mem_fail_after(-1);
        assert_true(rc == PL_OK || rc == PL_ENOMEM);
        ok = rc == PL_OK;
        rule_match_free(m);
    }
    assert_true(ok);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_table),        cmocka_unit_test(refusals),
        cmocka_unit_test(limits),           cmocka_unit_test(explanations),
        cmocka_unit_test(unreadable_event), cmocka_unit_test(out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
