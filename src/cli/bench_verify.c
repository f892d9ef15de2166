/* Bookkeeping of the idle scenario's verification burst: per channel, the
 * publish's answer and the subscriber's deliveries, plus the close codes of
 * every connection the server ended. */
#include "cli/bench_verify.h"

#include <inttypes.h>
#include <string.h>

#include "util/mem.h"

enum { ANS_NONE, ANS_ACKED, ANS_REFUSED };

int bench_verify_init(bench_verify *v, uint32_t n)
{
    memset(v, 0, sizeof(*v));
    v->sum.on = true;
    v->sum.channels = n;
    v->sum.settle_s = -1;
    v->sum.burst_write_s = -1;
    v->n = n;
    /* calloc of 0 may return NULL; one spare entry keeps n = 0 valid. */
    v->answer = pl_calloc((size_t)n + 1, sizeof(*v->answer));
    v->got = pl_calloc((size_t)n + 1, sizeof(*v->got));
    v->ack_off = pl_calloc((size_t)n + 1, sizeof(*v->ack_off));
    v->got_off = pl_calloc((size_t)n + 1, sizeof(*v->got_off));
    if (!v->answer || !v->got || !v->ack_off || !v->got_off) {
        bench_verify_release(v);
        return -1;
    }
    return 0;
}

void bench_verify_release(bench_verify *v)
{
    pl_free(v->answer);
    pl_free(v->got);
    pl_free(v->ack_off);
    pl_free(v->got_off);
    v->answer = NULL;
    v->got = NULL;
    v->ack_off = v->got_off = NULL;
}

void bench_verify_start(bench_verify *v, uint64_t first_id, uint64_t now)
{
    v->first_id = first_id;
    v->t_burst = now;
    v->sum.started = true;
    v->sum.published = v->n;
}

int64_t bench_verify_chan(const bench_verify *v, uint64_t id)
{
    if (!v->sum.started || id < v->first_id || id - v->first_id >= v->n) return -1;
    return (int64_t)(id - v->first_id);
}

static void count_code(bench_code_table *t, int code)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->e[i].code == code) {
            t->e[i].count++;
            return;
        }
    }
    if (t->n < BENCH_VERIFY_CODES) {
        t->e[t->n++] = (bench_code_count){.code = code, .count = 1};
        return;
    }
    t->e[BENCH_VERIFY_CODES - 1].count++;
}

static void touch(bench_verify *v, uint64_t now)
{
    if (now > v->t_last) v->t_last = now;
}

bool bench_verify_ack(bench_verify *v, uint64_t id, uint64_t offset, uint64_t now)
{
    int64_t ch = bench_verify_chan(v, id);
    if (ch < 0 || v->answer[ch] != ANS_NONE) return false;
    v->answer[ch] = ANS_ACKED;
    v->ack_off[ch] = offset;
    v->sum.acked++;
    touch(v, now);
    return true;
}

bool bench_verify_refuse(bench_verify *v, uint64_t id, int code, uint64_t now)
{
    int64_t ch = bench_verify_chan(v, id);
    if (ch < 0 || v->answer[ch] != ANS_NONE) return false;
    v->answer[ch] = ANS_REFUSED;
    v->sum.refused++;
    count_code(&v->sum.refused_by, code);
    touch(v, now);
    return true;
}

void bench_verify_deliver(bench_verify *v, uint32_t chan, uint64_t offset, uint64_t s, uint64_t now)
{
    /* Only the burst's pub (sequence 1) counts; anything else on a channel
     * nobody else publishes to is a server fault. */
    if (!v->sum.started || chan >= v->n || s != 1 || v->got[chan]++ > 0) {
        v->sum.extra++;
        return;
    }
    v->got_off[chan] = offset;
    v->sum.delivered++;
    touch(v, now);
}

void bench_verify_closed(bench_verify *v, int code, bool publisher)
{
    count_code(&v->sum.disconnects, code ? code : BENCH_VERIFY_ABNORMAL);
    if (publisher && !v->sum.publisher_close) {
        v->sum.publisher_close = code ? code : BENCH_VERIFY_ABNORMAL;
        v->sum.acked_at_close = v->sum.acked;
        v->sum.delivered_at_close = v->sum.delivered;
    }
}

bool bench_verify_settled(const bench_verify *v)
{
    return v->sum.started && v->sum.acked + v->sum.refused == v->n && v->sum.delivered == v->n;
}

void bench_verify_finish(bench_verify *v)
{
    bench_verify_sum *s = &v->sum;
    s->unanswered = s->published - s->acked - s->refused;
    s->missing = s->channels - s->delivered;
    s->mismatched = 0;
    for (uint32_t i = 0; i < v->n; i++)
        if (v->answer[i] == ANS_ACKED && v->got[i] && v->got_off[i] != v->ack_off[i])
            s->mismatched++;
    s->settle_s = v->t_last > v->t_burst ? (double)(v->t_last - v->t_burst) / 1e9 : -1;
}

bool bench_verify_pass(const bench_verify_sum *s)
{
    return s->started && s->missing == 0 && s->unanswered == 0 && s->refused == 0 &&
           s->extra == 0 && s->mismatched == 0 && s->disconnects.n == 0;
}

static void json_codes(sbuf *j, const char *name, const bench_code_table *t)
{
    sbuf_printf(j, ",\"%s\":{", name);
    for (size_t i = 0; i < t->n; i++)
        sbuf_printf(j, "%s\"%d\":%" PRIu64, i ? "," : "", t->e[i].code, t->e[i].count);
    sbuf_putc(j, '}');
}

void bench_verify_json(const bench_verify_sum *s, sbuf *j)
{
    if (!s->on) return;
    sbuf_printf(j,
                ",\"verify\":{\"ok\":%s,\"channels\":%" PRIu64 ",\"published\":%" PRIu64
                ",\"acked\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"unanswered\":%" PRIu64
                ",\"delivered\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"extra\":%" PRIu64
                ",\"mismatched\":%" PRIu64,
                bench_verify_pass(s) ? "true" : "false", s->channels, s->published, s->acked,
                s->refused, s->unanswered, s->delivered, s->missing, s->extra, s->mismatched);
    json_codes(j, "refused_by", &s->refused_by);
    json_codes(j, "disconnects", &s->disconnects);
    if (s->publisher_close)
        sbuf_printf(j,
                    ",\"publisher_closed\":{\"code\":%d,\"acked_before\":%" PRIu64
                    ",\"delivered_before\":%" PRIu64 "}",
                    s->publisher_close, s->acked_at_close, s->delivered_at_close);
    else
        sbuf_puts(j, ",\"publisher_closed\":null");
    sbuf_printf(j, ",\"burst_write_s\":%.3f,\"settle_s\":%.3f}", s->burst_write_s, s->settle_s);
}

static void human_codes(sbuf *h, const bench_code_table *t)
{
    for (size_t i = 0; i < t->n; i++)
        sbuf_printf(h, "%s%d x%" PRIu64, i ? ", " : " (", t->e[i].code, t->e[i].count);
    if (t->n) sbuf_putc(h, ')');
}

void bench_verify_human(const bench_verify_sum *s, sbuf *h)
{
    if (!s->on) return;
    if (!s->started) {
        sbuf_puts(h, ", verify: burst not sent");
        return;
    }
    sbuf_printf(h, ", verify: %" PRIu64 " published, %" PRIu64 " acked, %" PRIu64 " refused",
                s->published, s->acked, s->refused);
    human_codes(h, &s->refused_by);
    sbuf_printf(h,
                ", %" PRIu64 " unanswered, %" PRIu64 "/%" PRIu64 " subscribers served, %" PRIu64
                " missing",
                s->unanswered, s->delivered, s->channels, s->missing);
    if (s->extra || s->mismatched)
        sbuf_printf(h, ", %" PRIu64 " extra, %" PRIu64 " mismatched", s->extra, s->mismatched);
    uint64_t closed = 0;
    for (size_t i = 0; i < s->disconnects.n; i++)
        closed += s->disconnects.e[i].count;
    sbuf_printf(h, ", %" PRIu64 " closed by the server", closed);
    human_codes(h, &s->disconnects);
    if (s->publisher_close)
        sbuf_printf(h, ", publisher closed with %d after %" PRIu64 " acks", s->publisher_close,
                    s->acked_at_close);
}
