/* libFuzzer target for the webhook answer parsers: the whole input is a
 * Retry-After value (delay-seconds or any HTTP-date form) and a
 * webhook-delivery value, read at several clocks, then both as headers of a
 * classified answer. Checks the policy's promises: a delay is -1 or >= 0,
 * the next wait never exceeds the scheduled delay + 2 h, an exhausted
 * schedule gives no wait. Seeds: fuzz/corpus/retry_after/. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/backoff.h"
#include "hooks/retry.h"
#include "util/mem.h"

static const int64_t clocks[] = {0, 1445412480000LL, 4102444800000LL, -1000, INT64_MAX, INT64_MIN};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    for (size_t i = 0; i < sizeof(clocks) / sizeof(clocks[0]); i++)
        if (backoff_parse_retry_after(s, size, clocks[i]) < -1) abort();
    retry_kind k = retry_parse_delivery_header(s, size);
    if (k != RETRY_SUCCESS && k != RETRY_DISABLE_ENDPOINT && k != RETRY_ABORT_MESSAGE) abort();

    char *z = pl_malloc(size + 1);
    if (!z) return 0;
    memcpy(z, data, size);
    z[size] = '\0';
    retry_policy p;
    retry_policy_default(&p);
    retry_header h[] = {{"Retry-After", z}, {"webhook-delivery", z}};
    static const int statuses[] = {0, 200, 301, 410, 429, 500, 503};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        for (uint32_t attempt = 1; attempt <= p.n_attempts; attempt++) {
            retry_response r = {statuses[i], h, 2, "error"};
            retry_outcome o;
            retry_classify(&p, attempt, &r, clocks[1], size, &o);
            if (o.kind != RETRY_RETRY && o.kind != RETRY_THROTTLE) continue;
            if (o.exhausted != (attempt == p.n_attempts)) abort();
            int64_t sched = p.delays_ms[o.exhausted ? 0 : attempt];
            if (!o.exhausted &&
                (o.delay_ms < 0 || o.delay_ms > sched + sched / 10 + RETRY_AFTER_EXTRA_MS))
                abort();
        }
    pl_free(z);
    return 0;
}
