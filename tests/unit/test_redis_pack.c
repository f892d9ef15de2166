/* Unit tests for the Redis engine's stored form of a pub (engine/redis/
 * pack.h): every field comes back, absent fields stay absent, and no
 * truncated, oversized or hostile form is accepted or read past its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "engine/redis/pack.h"
#include "util/clock.h"

static pl_pub *sample(pub_class cls, int all)
{
    pub_fields f = {.tenant = "acme",
                    .tenant_len = 4,
                    .channel = "chat:a",
                    .channel_len = 6,
                    .data = "{\"t\":\"hi\"}",
                    .data_len = 10};
    if (all) {
        f.user = "alice", f.user_len = 5;
        f.client = "c1", f.client_len = 2;
        f.type = "msg.new", f.type_len = 7;
        f.correlation_id = "corr", f.correlation_id_len = 4;
        f.headers = "{\"h\":1}", f.headers_len = 7;
        f.idem_key = "k-1", f.idem_key_len = 3;
    }
    pl_pub *p = pub_new(&f, cls);
    assert_non_null(p);
    clock_ulid(p->id);
    return p;
}

static pl_pub *roundtrip(const pl_pub *p, sbuf *b)
{
    sbuf_init(b);
    rd_pack(b, p);
    assert_false(b->oom);
    return rd_unpack(b->data, b->len, "acme", 4, "chat:a", 6, 42, "abcdefgh", 8, 1234);
}

static void test_every_field_comes_back(void **state)
{
    (void)state;
    pl_pub *p = sample(PUB_STANDARD, 1);
    sbuf b;
    pl_pub *q = roundtrip(p, &b);
    assert_non_null(q);
    assert_int_equal(q->cls, PUB_STANDARD);
    assert_string_equal(q->id, p->id);
    assert_memory_equal(q->data, p->data, p->data_len);
    assert_string_equal(q->user, "alice");
    assert_string_equal(q->client, "c1");
    assert_string_equal(q->type, "msg.new");
    assert_string_equal(q->correlation_id, "corr");
    assert_string_equal(q->headers, "{\"h\":1}");
    assert_string_equal(q->idem_key, "k-1");
    assert_string_equal(q->tenant, "acme");
    assert_string_equal(q->channel, "chat:a");
    assert_int_equal(q->offset, 42);
    assert_string_equal(q->epoch, "abcdefgh");
    assert_int_equal(q->ts_ms, 1234);
    sbuf_release(&b);
    pub_unref(q);
    pub_unref(p);
}

static void test_absent_fields_stay_absent(void **state)
{
    (void)state;
    pl_pub *p = sample(PUB_GUARANTEED, 0);
    sbuf b;
    pl_pub *q = roundtrip(p, &b);
    assert_non_null(q);
    assert_int_equal(q->cls, PUB_GUARANTEED);
    assert_null(q->user);
    assert_null(q->type);
    assert_null(q->headers);
    assert_null(q->idem_key);
    sbuf_release(&b);
    pub_unref(q);
    pub_unref(p);
}

/* Every prefix of a valid form is refused, as are a form with bytes after
 * it, a class out of range, an id of the wrong length, a length past the
 * end, an endless LEB128, an epoch longer than an epoch, and ids and
 * epochs of characters they are not made of. */
static void test_hostile_forms_are_refused(void **state)
{
    (void)state;
    pl_pub *p = sample(PUB_STANDARD, 1);
    sbuf b;
    sbuf_init(&b);
    rd_pack(&b, p);
    for (size_t n = 0; n < b.len; n++)
        assert_null(rd_unpack(b.data, n, "a", 1, "c", 1, 1, "e", 1, 1));
    sbuf_putc(&b, 'x');
    assert_null(rd_unpack(b.data, b.len, "a", 1, "c", 1, 1, "e", 1, 1));
    b.len--;
    b.data[0] = 9;
    assert_null(rd_unpack(b.data, b.len, "a", 1, "c", 1, 1, "e", 1, 1));
    b.data[0] = 0;
    assert_non_null(b.data);
    assert_null(rd_unpack(b.data, b.len, "a", 1, "c", 1, 1, "123456789", 9, 1));
    static const char short_id[] = {0, 3, 'a', 'b', 1};
    assert_null(rd_unpack(short_id, sizeof(short_id), "a", 1, "c", 1, 1, "e", 1, 1));
    static const char past_end[] = {0, 0x7f, 'a'};
    assert_null(rd_unpack(past_end, sizeof(past_end), "a", 1, "c", 1, 1, "e", 1, 1));
    char endless[40] = {0};
    memset(endless + 1, 0xff, sizeof(endless) - 1);
    assert_null(rd_unpack(endless, sizeof(endless), "a", 1, "c", 1, 1, "e", 1, 1));
    /* An id with a NUL or outside the ULID alphabet, an epoch with a quote. */
    b.len = 0;
    rd_pack(&b, p);
    pl_pub *ok = rd_unpack(b.data, b.len, "a", 1, "c", 1, 1, "e", 1, 1);
    assert_non_null(ok);
    pub_unref(ok);
    assert_null(rd_unpack(b.data, b.len, "a", 1, "c", 1, 1, "e\"", 2, 1));
    b.data[3] = '\0';
    assert_null(rd_unpack(b.data, b.len, "a", 1, "c", 1, 1, "e", 1, 1));
    b.data[3] = '"';
    assert_null(rd_unpack(b.data, b.len, "a", 1, "c", 1, 1, "e", 1, 1));
    sbuf_release(&b);
    pub_unref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field_comes_back),
        cmocka_unit_test(test_absent_fields_stay_absent),
        cmocka_unit_test(test_hostile_forms_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
