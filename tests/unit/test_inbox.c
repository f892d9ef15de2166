/* Unit tests for a worker's inbox: messages come out in the order posted,
 * and when memory runs out none disappears without a trace: each is in the
 * queue, in the reserve, or released and reported as lost_all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net/inbox.h"
#include "util/mem.h"

static size_t dropped;

static void drop(inbox_msg m)
{
    (void)m;
    dropped++;
}

static inbox_msg msg(uintptr_t i)
{
    return (inbox_msg){INBOX_CALL, (void *)i};
}

static void posted_in_order_and_arrays_reused(void **state)
{
    (void)state;
    inbox ib;
    inbox_batch *b = pl_calloc(1, sizeof(*b));
    assert_int_equal(inbox_init(&ib), 0);
    for (int round = 0; round < 3; round++) {
        for (uintptr_t i = 1; i <= 100; i++) {
            inbox_msg m = msg(i);
            inbox_post(&ib, &m, 1, drop);
        }
        /* After the first round both arrays exist: no allocation needed. */
        if (round) pl_mem_fail_after(0);
        inbox_take(&ib, b);
        pl_mem_fail_after(-1);
        assert_int_equal(b->n, 100);
        assert_int_equal(b->nreserve, 0);
        assert_false(b->lost_all);
        for (size_t i = 0; i < b->n; i++)
            assert_ptr_equal(b->msgs[i].ptr, (void *)(i + 1));
    }
    inbox_take(&ib, b);
    assert_int_equal(b->n, 0);
    inbox_release(&ib, drop);
    pl_free(b);
}

static void no_memory_goes_to_the_reserve_then_lost_all(void **state)
{
    (void)state;
    inbox ib;
    inbox_batch *b = pl_calloc(1, sizeof(*b));
    assert_int_equal(inbox_init(&ib), 0);
    dropped = 0;
    pl_mem_fail_after(0);
    for (uintptr_t i = 1; i <= INBOX_RESERVE + 44; i++) {
        inbox_msg m = msg(i);
        inbox_post(&ib, &m, 1, drop);
    }
    pl_mem_fail_after(-1);
    inbox_take(&ib, b);
    assert_int_equal(b->n, 0);
    assert_int_equal(b->nreserve, INBOX_RESERVE);
    for (size_t i = 0; i < b->nreserve; i++)
        assert_ptr_equal(b->reserve[i].ptr, (void *)(i + 1));
    assert_true(b->lost_all);
    assert_int_equal(dropped, 44);
    /* Reported once: the next take starts clean. */
    inbox_take(&ib, b);
    assert_false(b->lost_all);
    assert_int_equal(b->nreserve, 0);
    inbox_release(&ib, drop);
    pl_free(b);
}

static void release_drops_what_is_left(void **state)
{
    (void)state;
    inbox ib;
    assert_int_equal(inbox_init(&ib), 0);
    dropped = 0;
    inbox_msg ms[3] = {msg(1), msg(2), msg(3)};
    inbox_post(&ib, ms, 3, drop);
    pl_mem_fail_after(0);
    inbox_post(&ib, ms, 3, drop); /* fits: the queue has room for 64 */
    pl_mem_fail_after(-1);
    inbox_release(&ib, drop);
    assert_int_equal(dropped, 6);
}

/* The engine thread's stage: when it cannot grow, what it holds goes first
 * and the new message after it, so the worker still sees the commit order;
 * the flush reports that the worker needs a wakeup. */
static void stage_keeps_order_without_memory(void **state)
{
    (void)state;
    inbox ib;
    inbox_stage st = {0};
    inbox_batch *b = pl_calloc(1, sizeof(*b));
    assert_int_equal(inbox_init(&ib), 0);
    inbox_stage_push(&st, &ib, msg(1), drop);
    inbox_stage_push(&st, &ib, msg(2), drop);
    assert_int_equal(inbox_stage_flush(&st, &ib, drop), 1);
    inbox_take(&ib, b); /* warms the second array: 64 slots each */
    assert_int_equal(b->n, 2);
    inbox_take(&ib, b);                    /* the queue is now the 64-slot array */
    for (uintptr_t i = 3; i < 3 + 64; i++) /* fill the stage to its capacity */
        inbox_stage_push(&st, &ib, msg(i), drop);
    assert_int_equal(st.len, 64);
    pl_mem_fail_after(0);
    inbox_stage_push(&st, &ib, msg(100), drop); /* cannot grow: 3..66 posted, then 100 */
    inbox_stage_push(&st, &ib, msg(101), drop); /* the stage has room again */
    assert_int_equal(inbox_stage_flush(&st, &ib, drop), 1);
    assert_int_equal(inbox_stage_flush(&st, &ib, drop), 0);
    pl_mem_fail_after(-1);
    inbox_take(&ib, b);
    /* 3..66 filled the queue; 100 and 101 found it full and no memory to
     * grow it, so they wait in the reserve, in order. Nothing dropped. */
    assert_int_equal(b->n, 64);
    for (size_t i = 0; i < b->n; i++)
        assert_ptr_equal(b->msgs[i].ptr, (void *)(i + 3));
    assert_int_equal(b->nreserve, 2);
    assert_ptr_equal(b->reserve[0].ptr, (void *)100);
    assert_ptr_equal(b->reserve[1].ptr, (void *)101);
    assert_false(b->lost_all);
    inbox_stage_release(&st);
    inbox_release(&ib, drop);
    pl_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posted_in_order_and_arrays_reused),
        cmocka_unit_test(no_memory_goes_to_the_reserve_then_lost_all),
        cmocka_unit_test(release_drops_what_is_left),
        cmocka_unit_test(stage_keeps_order_without_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
