/* Unit tests for hooks/hstore: the file is private and versioned; deliveries
 * are deduplicated, survive a reopen byte for byte and move through their
 * states; the attempt log pages and always answers valid JSON; the queries'
 * bounds and order; specs keep creation order; health round-trips; trim;
 * a write failing half way leaves nothing changed; tenants are isolated. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include "hooks/hstore.h"
#include "util/status.h"

#define T0 1700000000000LL

/* ---- fixture: a fresh directory and store per test ------------------------ */

typedef struct fx {
    char dir[64];
    hstore *s;
} fx;

static void fx_open(fx *f)
{
    char err[256] = "";
    assert_int_equal(hstore_open(f->dir, &f->s, err, sizeof(err)), PL_OK);
    assert_non_null(f->s);
}

static void fx_reopen(fx *f)
{
    hstore_close(f->s);
    fx_open(f);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    strcpy(f->dir, "/tmp/parley-hstore-XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    fx_open(f);
    *state = f;
    return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    fx *f = *state;
    hstore_close(f->s);
    nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Runs sql on a second connection to the store's file (inspection and
 * failure injection from outside). */
static void side_exec(fx *f, const char *sql)
{
    char path[128];
    sqlite3 *db;
    snprintf(path, sizeof(path), "%s/hooks.db", f->dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

/* ---- building and collecting deliveries ----------------------------------- */

static hstore_delivery dlv(const char *id, const char *tenant, const char *endpoint,
                           const char *pub_id, int64_t created_ms, int state)
{
    return (hstore_delivery){.id = id,
                             .tenant = tenant,
                             .endpoint = endpoint,
                             .rule = "r1",
                             .channel = "room",
                             .offset = 7,
                             .pub_id = pub_id,
                             .state = state,
                             .next_ms = created_ms,
                             .created_ms = created_ms,
                             .updated_ms = created_ms,
                             .body = "{\"x\":1}",
                             .body_len = 7};
}

static void put(fx *f, hstore_delivery d)
{
    int ins = -1;
    assert_int_equal(hstore_route_commit(f->s, &d, 1, &ins, NULL, 0), PL_OK);
    assert_int_equal(ins, 1);
}

/* A copy of what a callback saw. */
typedef struct seen {
    char id[32], tenant[16], endpoint[16], rule[16], channel[16], pub_id[16];
    char corr[16], okey[16], last_error[64];
    int has_rule, has_corr, has_okey, has_error, has_body;
    uint64_t offset;
    int state, last_status;
    uint32_t attempts;
    int64_t next_ms, created_ms, updated_ms;
    char body[512];
    size_t body_len;
} seen;

typedef struct seen_list {
    seen v[16];
    size_t n;
    size_t stop_after; /* 0: never stop */
} seen_list;

static void copy_str(char *dst, size_t cap, const char *s, int *has)
{
    if (has) *has = s != NULL;
    snprintf(dst, cap, "%s", s ? s : "");
}

static int collect(void *ctx, const hstore_delivery *d)
{
    seen_list *l = ctx;
    assert_true(l->n < 16);
    seen *x = &l->v[l->n++];
    memset(x, 0, sizeof(*x));
    copy_str(x->id, sizeof(x->id), d->id, NULL);
    copy_str(x->tenant, sizeof(x->tenant), d->tenant, NULL);
    copy_str(x->endpoint, sizeof(x->endpoint), d->endpoint, NULL);
    copy_str(x->rule, sizeof(x->rule), d->rule, &x->has_rule);
    copy_str(x->channel, sizeof(x->channel), d->channel, NULL);
    copy_str(x->pub_id, sizeof(x->pub_id), d->pub_id, NULL);
    copy_str(x->corr, sizeof(x->corr), d->correlation_id, &x->has_corr);
    copy_str(x->okey, sizeof(x->okey), d->okey, &x->has_okey);
    copy_str(x->last_error, sizeof(x->last_error), d->last_error, &x->has_error);
    x->offset = d->offset;
    x->state = d->state;
    x->last_status = d->last_status;
    x->attempts = d->attempts;
    x->next_ms = d->next_ms;
    x->created_ms = d->created_ms;
    x->updated_ms = d->updated_ms;
    x->has_body = d->body != NULL;
    if (d->body) {
        assert_true(d->body_len <= sizeof(x->body));
        memcpy(x->body, d->body, d->body_len);
        x->body_len = d->body_len;
    }
    return l->stop_after && l->n == l->stop_after ? 42 : 0;
}

static seen get(fx *f, const char *tenant, const char *id)
{
    seen_list l = {0};
    assert_int_equal(hstore_delivery_get(f->s, tenant, id, collect, &l), PL_OK);
    assert_int_equal(l.n, 1);
    return l.v[0];
}

typedef struct pos_list {
    char tenant[8][16], rule[8][16];
    uint64_t seq[8];
    size_t n;
} pos_list;

static int collect_pos(void *ctx, const hstore_position *p)
{
    pos_list *l = ctx;
    assert_true(l->n < 8);
    snprintf(l->tenant[l->n], 16, "%s", p->tenant);
    snprintf(l->rule[l->n], 16, "%s", p->rule);
    l->seq[l->n++] = p->seq;
    return 0;
}

static hstore_attempt att(const char *id, uint32_t n, int status, int state, int64_t next_ms)
{
    return (hstore_attempt){.delivery = id,
                            .attempt = n,
                            .ts_ms = T0 + n * 1000,
                            .status = status,
                            .latency_us = 12345,
                            .state = state,
                            .next_ms = next_ms};
}

static void commit_att(fx *f, hstore_attempt a)
{
    assert_int_equal(hstore_attempts_commit(f->s, &a, 1), PL_OK);
}

/* The store's JSON answer, parsed (NUL allowed inside strings). */
static json_t *parse(const sbuf *b)
{
    json_error_t jerr;
    json_t *j = json_loadb(b->data, b->len, JSON_ALLOW_NUL, &jerr);
    if (!j) fail_msg("invalid JSON (%s): %.*s", jerr.text, (int)b->len, b->data);
    return j;
}

static json_t *attempts_json(fx *f, const char *tenant, const char *id, uint32_t after,
                             uint32_t limit)
{
    sbuf b;
    sbuf_init(&b);
    assert_int_equal(hstore_attempts_json(f->s, tenant, id, after, limit, &b), PL_OK);
    json_t *j = parse(&b);
    sbuf_release(&b);
    return j;
}

/* ---- tests ----------------------------------------------------------------- */

static void test_open_private_and_versioned(void **state)
{
    fx *f = *state;
    char path[128], err[256] = "";
    struct stat st;
    snprintf(path, sizeof(path), "%s/hooks.db", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_string_equal(hstore_state_name(HSTORE_ABORTED), "aborted");
    assert_string_equal(hstore_state_name(9), "?");
    /* A newer format is refused with a message, and the file is left alone. */
    hstore_close(f->s);
    f->s = NULL;
    side_exec(f, "PRAGMA user_version = 2");
    hstore *s = (hstore *)1;
    assert_int_equal(hstore_open(f->dir, &s, err, sizeof(err)), PL_EIO);
    assert_null(s);
    assert_non_null(strstr(err, "version 2"));
    side_exec(f, "PRAGMA user_version = 1");
    fx_open(f);
    /* A missing directory. */
    assert_int_equal(hstore_open("/nonexistent/parley", &s, err, sizeof(err)), PL_EIO);
    assert_non_null(strstr(err, "hooks.db"));
    hstore_close(NULL);
}

static void test_route_commit_dedupes_and_survives_reopen(void **state)
{
    fx *f = *state;
    char binary[255];
    for (int i = 0; i < 255; i++)
        binary[i] = (char)(i + 1); /* every byte but NUL */
    const char *quoted = "{\"say\":\"he said \\\"hi\\\"\",'q':\"\\\\\"}";
    hstore_delivery d[3] = {dlv("d1", "t1", "e1", "p1", T0 + 2, HSTORE_PENDING),
                            dlv("d2", "t1", "e2", "p1", T0 + 1, HSTORE_PENDING),
                            dlv("d3", "t2", "e1", "p9", T0 + 3, HSTORE_PENDING)};
    d[0].body = binary;
    d[0].body_len = sizeof(binary);
    d[0].okey = "k1";
    d[0].correlation_id = "c1";
    d[0].offset = UINT64_MAX - 1;
    d[1].body = quoted;
    d[1].body_len = strlen(quoted);
    d[1].rule = NULL;
    d[2].body = "";
    d[2].body_len = 0;
    hstore_position pos[2] = {{"t1", "r1", 10}, {"t2", "r9", 3}};
    int ins[3] = {-1, -1, -1};
    assert_int_equal(hstore_route_commit(f->s, d, 3, ins, pos, 2), PL_OK);
    assert_int_equal(ins[0] + ins[1] + ins[2], 3);
    /* d2 again (with another body: the first is kept) and a new one. */
    hstore_delivery again[2] = {dlv("d2", "t1", "e2", "p1", T0 + 1, HSTORE_PENDING),
                                dlv("d4", "t1", "e1", "p2", T0 + 4, HSTORE_DELIVERED)};
    hstore_position pos2 = {"t1", "r1", 12};
    assert_int_equal(hstore_route_commit(f->s, again, 2, ins, &pos2, 1), PL_OK);
    assert_int_equal(ins[0], 0);
    assert_int_equal(ins[1], 1);
    assert_int_equal(hstore_route_commit(f->s, again, 1, NULL, NULL, 0), PL_OK);
    fx_reopen(f);

    pos_list pl = {0};
    assert_int_equal(hstore_positions_load(f->s, collect_pos, &pl), PL_OK);
    assert_int_equal(pl.n, 2);
    assert_string_equal(pl.tenant[0], "t1");
    assert_string_equal(pl.rule[0], "r1");
    assert_int_equal(pl.seq[0], 12);
    assert_int_equal(pl.seq[1], 3);
    assert_int_equal(hstore_position_delete(f->s, "t2", "r9"), PL_OK);
    pl.n = 0;
    assert_int_equal(hstore_positions_load(f->s, collect_pos, &pl), PL_OK);
    assert_int_equal(pl.n, 1);

    seen_list l = {0};
    assert_int_equal(hstore_pending_load(f->s, collect, &l), PL_OK);
    assert_int_equal(l.n, 3); /* d4 is delivered */
    assert_string_equal(l.v[0].id, "d2");
    assert_string_equal(l.v[1].id, "d1");
    assert_string_equal(l.v[2].id, "d3");
    assert_int_equal(l.v[0].body_len, strlen(quoted));
    assert_memory_equal(l.v[0].body, quoted, strlen(quoted));
    assert_false(l.v[0].has_rule);
    assert_int_equal(l.v[1].body_len, sizeof(binary));
    assert_memory_equal(l.v[1].body, binary, sizeof(binary));
    assert_string_equal(l.v[1].okey, "k1");
    assert_string_equal(l.v[1].corr, "c1");
    assert_string_equal(l.v[1].rule, "r1");
    assert_string_equal(l.v[1].channel, "room");
    assert_int_equal(l.v[1].offset, UINT64_MAX - 1);
    assert_false(l.v[0].has_okey || l.v[0].has_corr || l.v[0].has_error);
    assert_true(l.v[2].has_body);
    assert_int_equal(l.v[2].body_len, 0);
    assert_string_equal(l.v[2].tenant, "t2");
    /* A nonzero return stops the walk and is returned. */
    seen_list stop = {.stop_after = 2};
    assert_int_equal(hstore_pending_load(f->s, collect, &stop), 42);
    assert_int_equal(stop.n, 2);
}

static void test_attempts_move_states_and_page(void **state)
{
    fx *f = *state;
    put(f, dlv("d1", "t1", "e1", "p1", T0, HSTORE_PENDING));
    hstore_attempt a1 = att("d1", 1, 500, HSTORE_PENDING, T0 + 5000);
    a1.headers = "{\"content-type\":\"text/plain\"}";
    a1.body = "oops";
    a1.body_len = 4;
    hstore_attempt a2 = att("d1", 2, 0, HSTORE_PENDING, T0 + 60000);
    a2.error = "Timeout was reached";
    a2.latency_us = 1500;
    /* Two in one commit; the second's state wins. */
    hstore_attempt both[2] = {a1, a2};
    assert_int_equal(hstore_attempts_commit(f->s, both, 2), PL_OK);
    seen d = get(f, "t1", "d1");
    assert_int_equal(d.state, HSTORE_PENDING);
    assert_int_equal(d.attempts, 2);
    assert_int_equal(d.next_ms, T0 + 60000);
    assert_int_equal(d.updated_ms, a2.ts_ms);
    assert_int_equal(d.last_status, 0);
    assert_string_equal(d.last_error, "Timeout was reached");
    hstore_attempt a3 = att("d1", 3, 204, HSTORE_DELIVERED, 0);
    a3.error = ""; /* answered */
    commit_att(f, a3);
    d = get(f, "t1", "d1");
    assert_int_equal(d.state, HSTORE_DELIVERED);
    assert_int_equal(d.last_status, 204);
    assert_false(d.has_error);
    /* An attempt for a delivery that is not stored changes nothing. */
    commit_att(f, att("nope", 1, 200, HSTORE_DELIVERED, 0));

    json_t *j = attempts_json(f, "t1", "d1", 0, 2);
    json_t *list = json_object_get(j, "attempts");
    assert_int_equal(json_array_size(list), 2);
    assert_true(json_is_true(json_object_get(j, "more")));
    json_t *first = json_array_get(list, 0);
    assert_int_equal(json_integer_value(json_object_get(first, "attempt")), 1);
    assert_int_equal(json_integer_value(json_object_get(first, "ts")), T0 + 1000);
    assert_int_equal(json_integer_value(json_object_get(first, "status")), 500);
    assert_true(json_real_value(json_object_get(first, "latency_ms")) == 12.345);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(first, "headers"), "content-type")),
        "text/plain");
    assert_string_equal(json_string_value(json_object_get(first, "body")), "oops");
    assert_true(json_is_null(json_object_get(first, "error")));
    json_t *second = json_array_get(list, 1);
    assert_true(json_is_null(json_object_get(second, "headers")));
    assert_true(json_is_null(json_object_get(second, "body")));
    assert_true(json_real_value(json_object_get(second, "latency_ms")) == 1.5);
    assert_string_equal(json_string_value(json_object_get(second, "error")), "Timeout was reached");
    json_decref(j);
    j = attempts_json(f, "t1", "d1", 2, 2);
    list = json_object_get(j, "attempts");
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "attempt")), 3);
    assert_true(json_is_false(json_object_get(j, "more")));
    json_decref(j);
    j = attempts_json(f, "t1", "d1", 3, 10);
    assert_int_equal(json_array_size(json_object_get(j, "attempts")), 0);
    json_decref(j);
}

static void test_hostile_body_is_valid_json(void **state)
{
    fx *f = *state;
    put(f, dlv("d1", "t1", "e1", "p1", T0, HSTORE_PENDING));
    static const char hostile[] = "\"q\" \\b\\ \x01\x1f\n\t\x7f \xff\xc3( \xed\xa0\x80 "
                                  "\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82 end\0nul";
    hstore_attempt a = att("d1", 1, 400, HSTORE_DEAD, 0);
    a.body = hostile;
    a.body_len = sizeof(hostile) - 1;
    a.error = "bad \xfe error";
    commit_att(f, a);
    json_t *j = attempts_json(f, "t1", "d1", 0, 10);
    json_t *one = json_array_get(json_object_get(j, "attempts"), 0);
    json_t *body = json_object_get(one, "body");
    static const char want[] = "\"q\" \\b\\ \x01\x1f\n\t\x7f \xef\xbf\xbd\xef\xbf\xbd( "
                               "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xc3\xa9 \xf0\x9f\x98\x80 "
                               "\xef\xbf\xbd\xef\xbf\xbd end\0nul";
    assert_int_equal(json_string_length(body), sizeof(want) - 1);
    assert_memory_equal(json_string_value(body), want, sizeof(want) - 1);
    assert_string_equal(json_string_value(json_object_get(one, "error")), "bad \xef\xbf\xbd error");
    json_decref(j);
    /* Only the first 4 KiB of a longer body is kept. */
    static char big[6000];
    memset(big, 'x', sizeof(big));
    put(f, dlv("d2", "t1", "e1", "p1", T0, HSTORE_PENDING));
    a = att("d2", 1, 500, HSTORE_PENDING, T0);
    a.body = big;
    a.body_len = sizeof(big);
    commit_att(f, a);
    j = attempts_json(f, "t1", "d2", 0, 10);
    one = json_array_get(json_object_get(j, "attempts"), 0);
    assert_int_equal(json_string_length(json_object_get(one, "body")), 4096);
    json_decref(j);
}

static void test_pub_deliveries_json(void **state)
{
    fx *f = *state;
    hstore_delivery a = dlv("d1", "t1", "e1", "p1", T0 + 1, HSTORE_PENDING);
    hstore_delivery b = dlv("d2", "t1", "e2", "p1", T0 + 2, HSTORE_PENDING);
    b.rule = NULL;
    put(f, a);
    put(f, b);
    put(f, dlv("d3", "t1", "e1", "p2", T0, HSTORE_PENDING));
    put(f, dlv("d4", "t2", "e1", "p1", T0, HSTORE_PENDING));
    for (uint32_t i = 1; i <= 25; i++)
        commit_att(f, att("d1", i, 503, i == 25 ? HSTORE_DEAD : HSTORE_PENDING, T0));
    sbuf out;
    sbuf_init(&out);
    assert_int_equal(hstore_pub_deliveries_json(f->s, "t1", "p1", &out), PL_OK);
    json_t *j = parse(&out);
    assert_int_equal(json_array_size(j), 2);
    json_t *x = json_array_get(j, 0), *y = json_array_get(j, 1);
    assert_string_equal(json_string_value(json_object_get(x, "id")), "d1");
    assert_string_equal(json_string_value(json_object_get(x, "endpoint")), "e1");
    assert_string_equal(json_string_value(json_object_get(x, "rule")), "r1");
    assert_string_equal(json_string_value(json_object_get(x, "state")), "dead");
    assert_int_equal(json_integer_value(json_object_get(x, "attempts")), 25);
    assert_int_equal(json_integer_value(json_object_get(x, "last_status")), 503);
    assert_true(json_is_null(json_object_get(x, "last_error")));
    assert_int_equal(json_array_size(json_object_get(x, "attempt_log")), 20);
    assert_string_equal(json_string_value(json_object_get(y, "id")), "d2");
    assert_true(json_is_null(json_object_get(y, "rule")));
    assert_string_equal(json_string_value(json_object_get(y, "state")), "pending");
    assert_int_equal(json_array_size(json_object_get(y, "attempt_log")), 0);
    json_decref(j);
    sbuf_reset(&out);
    assert_int_equal(hstore_pub_deliveries_json(f->s, "t3", "p1", &out), PL_OK);
    assert_string_equal(out.data, "[]");
    sbuf_release(&out);
}

static void test_failed_in_window(void **state)
{
    fx *f = *state;
    put(f, dlv("a", "t1", "e1", "p", 100, HSTORE_DEAD));
    put(f, dlv("c", "t1", "e1", "p", 200, HSTORE_ABORTED));
    put(f, dlv("b", "t1", "e1", "p", 200, HSTORE_DEAD));
    put(f, dlv("d", "t1", "e1", "p", 300, HSTORE_PENDING));
    put(f, dlv("e", "t1", "e1", "p", 350, HSTORE_DELIVERED));
    put(f, dlv("f", "t1", "e1", "p", 400, HSTORE_DEAD));
    put(f, dlv("g", "t1", "e2", "p", 200, HSTORE_DEAD));
    put(f, dlv("h", "t2", "e1", "p", 200, HSTORE_DEAD));
    seen_list l = {0};
    assert_int_equal(hstore_failed_in_window(f->s, "t1", "e1", 200, 400, 10, collect, &l), PL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].id, "b"); /* same created_ms: by id */
    assert_string_equal(l.v[1].id, "c");
    assert_int_equal(l.v[1].state, HSTORE_ABORTED);
    assert_false(l.v[0].has_body);
    l.n = 0;
    assert_int_equal(hstore_failed_in_window(f->s, "t1", "e1", 101, 0, 10, collect, &l), PL_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.v[2].id, "f");
    l.n = 0;
    assert_int_equal(hstore_failed_in_window(f->s, "t1", "e1", 0, 0, 2, collect, &l), PL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].id, "a");
    assert_string_equal(l.v[1].id, "b");
    uint64_t counts[4];
    assert_int_equal(hstore_endpoint_counts(f->s, "t1", "e1", counts), PL_OK);
    assert_int_equal(counts[HSTORE_PENDING], 1);
    assert_int_equal(counts[HSTORE_DELIVERED], 1);
    assert_int_equal(counts[HSTORE_DEAD], 3);
    assert_int_equal(counts[HSTORE_ABORTED], 1);
}

static void test_requeue_and_tenant_isolation(void **state)
{
    fx *f = *state;
    put(f, dlv("p", "t1", "e1", "x", T0, HSTORE_PENDING));
    put(f, dlv("v", "t1", "e1", "x", T0, HSTORE_DELIVERED));
    put(f, dlv("a", "t1", "e1", "x", T0, HSTORE_ABORTED));
    put(f, dlv("d", "t1", "e1", "x", T0, HSTORE_PENDING));
    commit_att(f, att("d", 1, 500, HSTORE_PENDING, T0));
    hstore_attempt dead = att("d", 2, 500, HSTORE_DEAD, 0);
    dead.error = "gave up";
    commit_att(f, dead);
    assert_int_equal(hstore_delivery_requeue(f->s, "t1", "p", T0), PL_ECONFLICT);
    assert_int_equal(hstore_delivery_requeue(f->s, "t1", "v", T0), PL_ECONFLICT);
    assert_int_equal(hstore_delivery_requeue(f->s, "t1", "nope", T0), PL_ENOTFOUND);
    assert_int_equal(hstore_delivery_requeue(f->s, "t2", "d", T0), PL_ENOTFOUND);
    assert_int_equal(hstore_delivery_requeue(f->s, "t1", "a", T0 + 7), PL_OK);
    assert_int_equal(hstore_delivery_requeue(f->s, "t1", "d", T0 + 9), PL_OK);
    seen s = get(f, "t1", "d");
    assert_int_equal(s.state, HSTORE_PENDING);
    assert_int_equal(s.attempts, 0);
    assert_int_equal(s.next_ms, T0 + 9);
    assert_string_equal(s.last_error, "gave up");
    assert_int_equal(get(f, "t1", "a").state, HSTORE_PENDING);
    assert_int_equal(hstore_delivery_requeue(f->s, "t1", "d", T0), PL_ECONFLICT);
    /* The replay's attempts restart at 1; the log keeps numbering. */
    commit_att(f, att("d", 1, 200, HSTORE_DELIVERED, 0));
    assert_int_equal(get(f, "t1", "d").attempts, 1);
    json_t *j = attempts_json(f, "t1", "d", 2, 10);
    json_t *list = json_object_get(j, "attempts");
    assert_int_equal(json_array_size(list), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 0), "attempt")), 3);
    json_decref(j);
    /* Another tenant sees none of it. */
    seen_list l = {0};
    sbuf b;
    sbuf_init(&b);
    assert_int_equal(hstore_delivery_get(f->s, "t2", "d", collect, &l), PL_ENOTFOUND);
    assert_int_equal(l.n, 0);
    assert_int_equal(hstore_attempts_json(f->s, "t2", "d", 0, 10, &b), PL_ENOTFOUND);
    assert_int_equal(b.len, 0);
    sbuf_release(&b);
}

static void test_endpoint_kill(void **state)
{
    fx *f = *state;
    put(f, dlv("a", "t1", "e1", "x", T0, HSTORE_PENDING));
    put(f, dlv("b", "t1", "e1", "x", T0, HSTORE_PENDING));
    put(f, dlv("c", "t1", "e1", "x", T0, HSTORE_PENDING));
    put(f, dlv("d", "t1", "e1", "x", T0, HSTORE_DELIVERED));
    put(f, dlv("e", "t1", "e2", "x", T0, HSTORE_PENDING));
    put(f, dlv("f", "t2", "e1", "x", T0, HSTORE_PENDING));
    uint64_t n = 99;
    assert_int_equal(hstore_endpoint_kill(f->s, "t1", "e1", "endpoint deleted", T0 + 5, &n), PL_OK);
    assert_int_equal(n, 3);
    seen s = get(f, "t1", "b");
    assert_int_equal(s.state, HSTORE_DEAD);
    assert_string_equal(s.last_error, "endpoint deleted");
    assert_int_equal(s.updated_ms, T0 + 5);
    assert_int_equal(get(f, "t1", "d").state, HSTORE_DELIVERED);
    assert_int_equal(get(f, "t1", "e").state, HSTORE_PENDING);
    assert_int_equal(get(f, "t2", "f").state, HSTORE_PENDING);
    assert_int_equal(hstore_endpoint_kill(f->s, "t1", "e1", "again", T0 + 6, &n), PL_OK);
    assert_int_equal(n, 0);
}

typedef struct spec_list {
    char tenant[8][16], id[8][16], spec[8][32];
    size_t n;
} spec_list;

static int collect_spec(void *ctx, const char *tenant, const char *id, const char *spec)
{
    spec_list *l = ctx;
    assert_true(l->n < 8);
    snprintf(l->tenant[l->n], 16, "%s", tenant);
    snprintf(l->id[l->n], 16, "%s", id);
    snprintf(l->spec[l->n++], 32, "%s", spec);
    return 0;
}

static void test_specs_keep_creation_order(void **state)
{
    fx *f = *state;
    assert_int_equal(hstore_spec_put(f->s, HSTORE_ENDPOINT, "t1", "zeta", "{\"v\":1}"), PL_OK);
    assert_int_equal(hstore_spec_put(f->s, HSTORE_ROUTE, "t1", "r1", "{\"r\":1}"), PL_OK);
    assert_int_equal(hstore_spec_put(f->s, HSTORE_ENDPOINT, "t2", "alpha", "{\"v\":2}"), PL_OK);
    assert_int_equal(hstore_spec_put(f->s, HSTORE_ENDPOINT, "t1", "mid", "{\"v\":3}"), PL_OK);
    assert_int_equal(hstore_spec_put(f->s, HSTORE_ENDPOINT, "t1", "zeta", "{\"v\":4}"), PL_OK);
    assert_int_equal(hstore_spec_delete(f->s, HSTORE_ENDPOINT, "t1", "mid"), PL_OK);
    assert_int_equal(hstore_spec_delete(f->s, HSTORE_ENDPOINT, "t1", "mid"), PL_ENOTFOUND);
    assert_int_equal(hstore_spec_delete(f->s, HSTORE_ROUTE, "t2", "r1"), PL_ENOTFOUND);
    assert_int_equal(hstore_spec_put(f->s, HSTORE_ENDPOINT, "t1", "beta", "{\"v\":5}"), PL_OK);
    fx_reopen(f);
    spec_list l = {0};
    assert_int_equal(hstore_spec_load(f->s, HSTORE_ENDPOINT, collect_spec, &l), PL_OK);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.id[0], "zeta");
    assert_string_equal(l.spec[0], "{\"v\":4}"); /* replaced in place */
    assert_string_equal(l.id[1], "alpha");
    assert_string_equal(l.tenant[1], "t2");
    assert_string_equal(l.id[2], "beta");
    memset(&l, 0, sizeof(l));
    assert_int_equal(hstore_spec_load(f->s, HSTORE_ROUTE, collect_spec, &l), PL_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.spec[0], "{\"r\":1}");
}

typedef struct health_list {
    char tenant[4][16], endpoint[4][16];
    endpoint_health h[4];
    size_t n;
} health_list;

static int collect_health(void *ctx, const char *tenant, const char *endpoint,
                          const endpoint_health *h)
{
    health_list *l = ctx;
    assert_true(l->n < 4);
    snprintf(l->tenant[l->n], 16, "%s", tenant);
    snprintf(l->endpoint[l->n], 16, "%s", endpoint);
    l->h[l->n++] = *h;
    return 0;
}

static void test_health_round_trip(void **state)
{
    fx *f = *state;
    endpoint_health a, b;
    endpoint_health_init(&a);
    endpoint_health_init(&b);
    a.state = HEALTH_DISABLED;
    a.failing_since = T0 + 1;
    a.disable_at = T0 + 2;
    a.last_success = T0 + 3;
    a.last_failure = T0 + 4;
    a.first_seen = T0 + 5;
    a.warned_24h = true;
    a.warned_72h = false;
    snprintf(a.reason, sizeof(a.reason), "HTTP 410 \"gone\"");
    b.state = HEALTH_FAILING;
    b.warned_72h = true;
    assert_int_equal(hstore_health_put(f->s, "t1", "e1", &b), PL_OK);
    assert_int_equal(hstore_health_put(f->s, "t1", "e1", &a), PL_OK); /* replaces */
    assert_int_equal(hstore_health_put(f->s, "t1", "e2", &b), PL_OK);
    assert_int_equal(hstore_health_put(f->s, "t2", "e1", &b), PL_OK);
    assert_int_equal(hstore_health_delete(f->s, "t2", "e1"), PL_OK);
    fx_reopen(f);
    health_list l = {0};
    assert_int_equal(hstore_health_load(f->s, collect_health, &l), PL_OK);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.endpoint[0], "e1");
    endpoint_health *h = &l.h[0];
    assert_int_equal(h->state, HEALTH_DISABLED);
    assert_int_equal(h->failing_since, T0 + 1);
    assert_int_equal(h->disable_at, T0 + 2);
    assert_int_equal(h->last_success, T0 + 3);
    assert_int_equal(h->last_failure, T0 + 4);
    assert_int_equal(h->first_seen, T0 + 5);
    assert_true(h->warned_24h);
    assert_false(h->warned_72h);
    assert_string_equal(h->reason, "HTTP 410 \"gone\"");
    assert_int_equal(l.h[1].state, HEALTH_FAILING);
    assert_true(l.h[1].warned_72h);
    assert_string_equal(l.h[1].reason, "");
}

static void test_trim(void **state)
{
    fx *f = *state;
    put(f, dlv("old", "t1", "e1", "x", T0, HSTORE_PENDING));
    put(f, dlv("new", "t1", "e1", "x", T0, HSTORE_PENDING));
    put(f, dlv("dead", "t1", "e1", "x", T0, HSTORE_DEAD));
    commit_att(f, att("old", 1, 200, HSTORE_DELIVERED, 0));  /* updated T0 + 1000 */
    commit_att(f, att("new", 10, 200, HSTORE_DELIVERED, 0)); /* updated T0 + 10000 */
    uint64_t n = 99;
    assert_int_equal(hstore_trim(f->s, T0 + 5000, &n), PL_OK);
    assert_int_equal(n, 1);
    seen_list l = {0};
    assert_int_equal(hstore_delivery_get(f->s, "t1", "old", collect, &l), PL_ENOTFOUND);
    get(f, "t1", "new");
    get(f, "t1", "dead");
    /* Its attempts went with it: a new delivery of the same id starts a
     * fresh log. */
    put(f, dlv("old", "t1", "e1", "x", T0, HSTORE_PENDING));
    json_t *j = attempts_json(f, "t1", "old", 0, 10);
    assert_int_equal(json_array_size(json_object_get(j, "attempts")), 0);
    json_decref(j);
    j = attempts_json(f, "t1", "new", 0, 10);
    assert_int_equal(json_array_size(json_object_get(j, "attempts")), 1);
    json_decref(j);
    assert_int_equal(hstore_trim(f->s, T0 + 5000, &n), PL_OK);
    assert_int_equal(n, 0);
}

/* A write that fails part way (a trigger raising an error on the last
 * table it touches, or a missing required value) leaves nothing changed,
 * and the store works on afterwards. */
static void test_failed_write_changes_nothing(void **state)
{
    fx *f = *state;
    hstore_position p0 = {"t1", "r1", 5};
    assert_int_equal(hstore_route_commit(f->s, NULL, 0, NULL, &p0, 1), PL_OK);
    put(f, dlv("d0", "t1", "e1", "x", T0, HSTORE_PENDING));
    side_exec(f, "CREATE TRIGGER fail_pos BEFORE UPDATE ON positions"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END;"
                 "CREATE TRIGGER fail_att BEFORE INSERT ON attempts"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END;");
    hstore_delivery d[2] = {dlv("d1", "t1", "e1", "x", T0, HSTORE_PENDING),
                            dlv("d2", "t1", "e1", "x", T0, HSTORE_PENDING)};
    hstore_position p1 = {"t1", "r1", 9};
    assert_int_equal(hstore_route_commit(f->s, d, 2, NULL, &p1, 1), PL_EIO);
    seen_list l = {0};
    assert_int_equal(hstore_delivery_get(f->s, "t1", "d1", collect, &l), PL_ENOTFOUND);
    assert_int_equal(hstore_delivery_get(f->s, "t1", "d2", collect, &l), PL_ENOTFOUND);
    /* The delivery's move happens before the log insert fails. */
    hstore_attempt a = att("d0", 1, 200, HSTORE_DELIVERED, 0);
    assert_int_equal(hstore_attempts_commit(f->s, &a, 1), PL_EIO);
    seen s = get(f, "t1", "d0");
    assert_int_equal(s.state, HSTORE_PENDING);
    assert_int_equal(s.attempts, 0);
    /* A missing required value fails the second insert of a batch. */
    d[1].channel = NULL;
    assert_int_equal(hstore_route_commit(f->s, d, 2, NULL, NULL, 0), PL_EIO);
    assert_int_equal(hstore_delivery_get(f->s, "t1", "d1", collect, &l), PL_ENOTFOUND);

    side_exec(f, "DROP TRIGGER fail_pos; DROP TRIGGER fail_att;");
    pos_list pl = {0};
    assert_int_equal(hstore_positions_load(f->s, collect_pos, &pl), PL_OK);
    assert_int_equal(pl.n, 1);
    assert_int_equal(pl.seq[0], 5);
    d[1].channel = "room";
    assert_int_equal(hstore_route_commit(f->s, d, 2, NULL, &p1, 1), PL_OK);
    assert_int_equal(hstore_attempts_commit(f->s, &a, 1), PL_OK);
    assert_int_equal(get(f, "t1", "d0").state, HSTORE_DELIVERED);
    get(f, "t1", "d2");
}

/* A routing batch that carries waiting attempts stores both in one
 * transaction: all of it, or (an attempt that cannot be logged) none. */
static void test_route_commit_with_attempts(void **state)
{
    fx *f = *state;
    put(f, dlv("d0", "t1", "e1", "x", T0, HSTORE_PENDING));
    hstore_attempt a = att("d0", 1, 200, HSTORE_DELIVERED, 0);
    hstore_delivery d = dlv("d1", "t1", "e1", "x", T0, HSTORE_PENDING);
    hstore_position p = {"t1", "r1", 7};
    side_exec(f, "CREATE TRIGGER fail_att BEFORE INSERT ON attempts"
                 " BEGIN SELECT RAISE(ABORT, 'injected'); END;");
    int ins = -1;
    assert_int_equal(hstore_route_commit_with(f->s, &a, 1, &d, 1, &ins, &p, 1), PL_EIO);
    seen_list l = {0};
    assert_int_equal(hstore_delivery_get(f->s, "t1", "d1", collect, &l), PL_ENOTFOUND);
    assert_int_equal(get(f, "t1", "d0").state, HSTORE_PENDING);
    side_exec(f, "DROP TRIGGER fail_att;");
    assert_int_equal(hstore_route_commit_with(f->s, &a, 1, &d, 1, &ins, &p, 1), PL_OK);
    assert_int_equal(ins, 1);
    fx_reopen(f);
    seen s = get(f, "t1", "d0");
    assert_int_equal(s.state, HSTORE_DELIVERED);
    assert_int_equal(s.attempts, 1);
    assert_int_equal(get(f, "t1", "d1").state, HSTORE_PENDING);
    pos_list pl = {0};
    assert_int_equal(hstore_positions_load(f->s, collect_pos, &pl), PL_OK);
    assert_int_equal(pl.n, 1);
    assert_int_equal(pl.seq[0], 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_private_and_versioned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_commit_dedupes_and_survives_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_attempts_move_states_and_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_body_is_valid_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pub_deliveries_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_in_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_requeue_and_tenant_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_endpoint_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_specs_keep_creation_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_write_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_commit_with_attempts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
