/* A worker's inbox; see inbox.h. The reserve exists for one case: an
 * allocation failing under memory pressure must not turn into a pub that a
 * subscriber silently never gets. */
#include "net/inbox.h"

#include <string.h>

#include "util/mem.h"

static int vec_push(inbox_msg **v, size_t *len, size_t *cap, inbox_msg m)
{
    if (*len == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        inbox_msg *nv = pl_realloc(*v, ncap * sizeof(**v));
        if (!nv) return -1;
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*len)++] = m;
    return 0;
}

int inbox_init(inbox *ib)
{
    memset(ib, 0, sizeof(*ib));
    ib->reserve = pl_calloc(INBOX_RESERVE, sizeof(*ib->reserve));
    if (!ib->reserve) return -1;
    pthread_mutex_init(&ib->lock, NULL);
    return 0;
}

void inbox_release(inbox *ib, void (*drop)(inbox_msg m))
{
    if (!ib->reserve) return;
    for (size_t i = 0; i < ib->len; i++)
        drop(ib->q[i]);
    for (size_t i = 0; i < ib->nreserve; i++)
        drop(ib->reserve[i]);
    pl_free(ib->q);
    pl_free(ib->spare);
    pl_free(ib->reserve);
    pthread_mutex_destroy(&ib->lock);
    memset(ib, 0, sizeof(*ib));
}

void inbox_post(inbox *ib, const inbox_msg *msgs, size_t n, void (*drop)(inbox_msg m))
{
    pthread_mutex_lock(&ib->lock);
    for (size_t i = 0; i < n; i++) {
        if (vec_push(&ib->q, &ib->len, &ib->cap, msgs[i]) == 0) continue;
        if (ib->nreserve < INBOX_RESERVE) {
            ib->reserve[ib->nreserve++] = msgs[i];
            continue;
        }
        ib->lost_all = 1;
        drop(msgs[i]);
    }
    pthread_mutex_unlock(&ib->lock);
}

void inbox_take(inbox *ib, inbox_batch *out)
{
    pthread_mutex_lock(&ib->lock);
    /* The array handed out by the previous take (done with by now) becomes
     * the queue: two arrays alternate, no allocation per drain. */
    out->msgs = ib->q;
    out->n = ib->len;
    inbox_msg *next = ib->spare;
    size_t next_cap = ib->spare_cap;
    ib->spare = ib->q;
    ib->spare_cap = ib->cap;
    ib->q = next;
    ib->cap = next_cap;
    ib->len = 0;
    memcpy(out->reserve, ib->reserve, ib->nreserve * sizeof(*ib->reserve));
    out->nreserve = ib->nreserve;
    ib->nreserve = 0;
    out->lost_all = ib->lost_all;
    ib->lost_all = 0;
    pthread_mutex_unlock(&ib->lock);
}

void inbox_stage_push(inbox_stage *st, inbox *ib, inbox_msg m, void (*drop)(inbox_msg m))
{
    if (vec_push(&st->v, &st->len, &st->cap, m) == 0) return;
    inbox_stage_flush(st, ib, drop);
    inbox_post(ib, &m, 1, drop);
    st->posted = 1;
}

int inbox_stage_flush(inbox_stage *st, inbox *ib, void (*drop)(inbox_msg m))
{
    int any = st->posted || st->len;
    st->posted = 0;
    if (st->len) inbox_post(ib, st->v, st->len, drop);
    st->len = 0;
    return any;
}

void inbox_stage_release(inbox_stage *st)
{
    pl_free(st->v);
    memset(st, 0, sizeof(*st));
}
