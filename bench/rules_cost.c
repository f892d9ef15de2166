/* The cost of routing rules: ns to prepare a 1 KiB pub (tokenize its data
 * and headers once) and ns to evaluate one three-layer rule on it, so the
 * cost per rule per event for n rules sharing a preparation is
 * prepare / n + eval. Built by the CMake target bench_rules (never run by
 * the tests); each figure is the best of several rounds. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "hooks/rule.h"
#include "util/status.h"

static const char *rule_json = "{\"channel\":\"alerts:**\",\"type\":[\"incident.*\"],"
                               "\"where\":{\"data.severity\":{\"$in\":[\"high\",\"critical\"]}}}";
/* The same layers with four clauses, a nested path, an index and $or. */
static const char *rule4_json =
    "{\"channel\":\"alerts:**\",\"type\":[\"deploy.*\",\"incident.*\"],"
    "\"where\":{\"data.severity\":{\"$in\":[\"high\",\"critical\"]},"
    "\"data.metrics.cpu\":{\"$gte\":90},\"data.hosts.1\":{\"$contains\":\"db\"},"
    "\"$or\":[{\"headers.x-source\":\"grafana\"},{\"data.region\":\"us\"}]}}";

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* A pub's data of about 1 KiB: an alert with a message and some metrics. */
static size_t make_data(char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "{\"id\":\"a-1842\",\"service\":\"orders\",\"region\":\"eu\","
                     "\"hosts\":[\"web1\",\"db1\",\"db2\"],"
                     "\"metrics\":{\"cpu\":93.5,\"mem\":71.2,\"disk\":40,\"load\":[3.1,2.9,2.5]},"
                     "\"labels\":{\"team\":\"storage\",\"tier\":\"1\",\"oncall\":\"alice\"},"
                     "\"started_at\":\"2026-12-07T10:00:00Z\",\"count\":12,\"ack\":false,"
                     "\"message\":\"");
    while ((size_t)n < 990)
        n += snprintf(buf + n, cap - (size_t)n, "replica lag above threshold; ");
    n += snprintf(buf + n, cap - (size_t)n, "\",\"severity\":\"critical\"}");
    return (size_t)n;
}

static rule_match *compile(const char *s)
{
    json_t *j = json_loads(s, 0, NULL);
    rule_match *m = NULL;
    rule_error err;
    if (!j || rule_match_compile(j, &m, &err)) {
        fprintf(stderr, "rule: %s: %s\n", err.path, err.reason);
        return NULL;
    }
    json_decref(j);
    return m;
}

int main(void)
{
    static char data[2048];
    size_t dn = make_data(data, sizeof(data));
    const char *hdr = "{\"x-source\":\"grafana\",\"x-trace\":\"4bf92f3577b34da6\"}";
    rule_event_fields f = {.tenant = "acme",
                           .channel = "alerts:eu:db1",
                           .channel_len = 13,
                           .type = "incident.open",
                           .type_len = 13,
                           .data = data,
                           .data_len = dn,
                           .headers = hdr,
                           .headers_len = strlen(hdr)};
    rule_match *m = compile(rule_json), *m4 = compile(rule4_json);
    rule_event *ev = rule_event_new();
    if (!m || !m4 || !ev || rule_event_prepare(ev, &f) != PL_OK) return 1;
    if (!rule_match_eval(m, ev) || !rule_match_eval(m4, ev)) {
        fprintf(stderr, "the rules should match the event\n");
        return 1;
    }
    enum { ROUNDS = 7, PREP = 200000, EVAL = 1000000 };
    double prep = 1e30, eval = 1e30, eval4 = 1e30;
    volatile int sink = 0;
    for (int r = 0; r < ROUNDS; r++) {
        double t0 = now_ns();
        for (int i = 0; i < PREP; i++)
            sink += rule_event_prepare(ev, &f);
        double t1 = now_ns();
        for (int i = 0; i < EVAL; i++)
            sink += rule_match_eval(m, ev);
        double t2 = now_ns();
        for (int i = 0; i < EVAL; i++)
            sink += rule_match_eval(m4, ev);
        double t3 = now_ns();
        if ((t1 - t0) / PREP < prep) prep = (t1 - t0) / PREP;
        if ((t2 - t1) / EVAL < eval) eval = (t2 - t1) / EVAL;
        if ((t3 - t2) / EVAL < eval4) eval4 = (t3 - t2) / EVAL;
    }
    printf("data %zu bytes; prepare %.0f ns/event; eval %.0f ns/rule (1 clause), %.0f ns/rule "
           "(5 clauses)\n",
           dn, prep, eval, eval4);
    printf("per rule per event, 1 clause: %.0f ns with 1 rule per event, %.0f ns with 10\n",
           prep + eval, prep / 10 + eval);
    printf("per rule per event, 5 clauses: %.0f ns with 1 rule per event, %.0f ns with 10\n",
           prep + eval4, prep / 10 + eval4);
    rule_event_free(ev);
    rule_match_free(m);
    rule_match_free(m4);
    return sink < 0;
}
