/* Unit tests for the webhook HTTP sender (hooks/sender.c) against a scripted
 * HTTP responder on a loopback socket: what a result captures (status,
 * Retry-After, webhook-delivery, the first 4 KiB of the body), redirects not
 * followed, the SSRF guard before any connection, bad URLs, and requests in
 * flight cancelled cleanly when the sender stops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "hooks/sender.h"
#include "util/status.h"

/* ---- a scripted responder ----------------------------------------------- */

typedef struct responder {
    int fd, port;
    const char *reply; /* NULL: read the request and never answer */
    size_t reply_len;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int accepted;
    char request[8192];
    size_t request_len;
    int stop;
} responder;

/* Reads until the end of the headers and the 7-byte body every test sends:
 * headers and body may come in separate writes. */
static void read_request(responder *r, int c)
{
    r->request_len = 0;
    for (;;) {
        ssize_t got = read(c, r->request + r->request_len, sizeof(r->request) - 1 - r->request_len);
        if (got <= 0) break;
        r->request_len += (size_t)got;
        r->request[r->request_len] = '\0';
        char *end = strstr(r->request, "\r\n\r\n");
        if (end && r->request + r->request_len - (end + 4) >= 7) break;
        if (r->request_len == sizeof(r->request) - 1) break;
    }
}

static void *serve(void *arg)
{
    responder *r = arg;
    int held[8], n_held = 0;
    for (;;) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0) break;
        pthread_mutex_lock(&r->lock);
        r->accepted++;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        read_request(r, c);
        if (!r->reply) {
            if (n_held < 8) held[n_held++] = c;
            continue;
        }
        if (write(c, r->reply, r->reply_len) < 0) {
        }
        close(c);
    }
    for (int i = 0; i < n_held; i++)
        close(held[i]);
    return NULL;
}

static void responder_start(responder *r, const char *reply, size_t len)
{
    memset(r, 0, sizeof(*r));
    r->reply = reply;
    r->reply_len = len;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(r->fd, 16), 0);
    getsockname(r->fd, (struct sockaddr *)&a, &al);
    r->port = ntohs(a.sin_port);
    pthread_create(&r->thread, NULL, serve, r);
}

static void responder_stop(responder *r)
{
    shutdown(r->fd, SHUT_RDWR); /* wakes accept */
    pthread_join(r->thread, NULL);
    close(r->fd);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
}

/* ---- results, copied off the sender thread ------------------------------ */

typedef struct got {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n;
    int status;
    ssrf_verdict ssrf;
    char error[512], retry_after[64], delivery[64], address[64];
    size_t body_len;
    int truncated, has_retry_after;
    char body0;
    int64_t latency_us;
} got;

static void on_done(const sender_result *res, void *user)
{
    got *g = user;
    pthread_mutex_lock(&g->lock);
    g->status = res->status;
    g->ssrf = res->ssrf;
    snprintf(g->error, sizeof(g->error), "%s", res->error);
    snprintf(g->address, sizeof(g->address), "%s", res->address);
    g->has_retry_after = res->retry_after != NULL;
    snprintf(g->retry_after, sizeof(g->retry_after), "%s",
             res->retry_after ? res->retry_after : "");
    snprintf(g->delivery, sizeof(g->delivery), "%s", res->delivery ? res->delivery : "");
    g->body_len = res->body_len;
    g->body0 = res->body_len ? res->body[0] : 0;
    g->truncated = res->body_truncated;
    g->latency_us = res->latency_us;
    g->n++;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

static void got_init(got *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
}

static void got_wait(got *g, int n)
{
    pthread_mutex_lock(&g->lock);
    while (g->n < n)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

static ssrf_allowlist *loopback(void)
{
    const char *nets[] = {"127.0.0.0/8"};
    ssrf_allowlist *a = NULL;
    char err[128];
    assert_int_equal(ssrf_allowlist_new(nets, 1, &a, err, sizeof(err)), PL_OK);
    return a;
}

static void submit(sender *s, const char *url, const ssrf_allowlist *allow, got *g)
{
    static const char *const headers[] = {"Content-Type: application/json", "webhook-id: msg_1"};
    sender_request req = {.url = url,
                          .headers = headers,
                          .n_headers = 2,
                          .body = "{\"a\":1}",
                          .body_len = 7,
                          .timeout_ms = 5000,
                          .allow = allow,
                          .done = on_done,
                          .user = g};
    assert_int_equal(sender_submit(s, &req), PL_OK);
}

/* ---- tests -------------------------------------------------------------- */

static void captures_the_answer(void **state)
{
    static char reply[6000];
    int n = snprintf(reply, sizeof(reply),
                     "HTTP/1.1 503 Service Unavailable\r\nRetry-After:  7 \r\n"
                     "Webhook-Delivery: abort-message\r\nContent-Length: 5000\r\n"
                     "Connection: close\r\n\r\n");
    memset(reply + n, 'x', 5000);
    responder r;
    responder_start(&r, reply, (size_t)n + 5000);
    ssrf_allowlist *allow = loopback();
    sender *s;
    char err[128];
    assert_int_equal(sender_new(0, &s, err, sizeof(err)), PL_OK);
    got g;
    got_init(&g);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", r.port);
    submit(s, url, allow, &g);
    got_wait(&g, 1);
    assert_int_equal(g.status, 503);
    assert_string_equal(g.error, "");
    assert_int_equal(g.ssrf, SSRF_OK);
    assert_string_equal(g.address, "127.0.0.1");
    assert_string_equal(g.retry_after, "7");
    assert_string_equal(g.delivery, "abort-message");
    assert_int_equal(g.body_len, SENDER_BODY_CAPTURE);
    assert_true(g.truncated);
    assert_int_equal(g.body0, 'x');
    assert_true(g.latency_us > 0);
    sender_free(s);
    responder_stop(&r);
    r.request[r.request_len] = '\0';
    assert_non_null(strstr(r.request, "POST /hook HTTP/1.1"));
    assert_non_null(strstr(r.request, "webhook-id: msg_1"));
    assert_null(strstr(r.request, "Expect:"));
    assert_non_null(strstr(r.request, "\r\n\r\n{\"a\":1}"));
    ssrf_allowlist_free(allow);
}

static void redirect_not_followed(void **state)
{
    static const char reply[] = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\n"
                                "Content-Length: 0\r\nConnection: close\r\n\r\n";
    responder r;
    responder_start(&r, reply, sizeof(reply) - 1);
    ssrf_allowlist *allow = loopback();
    sender *s;
    char err[128], url[64];
    assert_int_equal(sender_new(1, &s, err, sizeof(err)), PL_OK);
    got g;
    got_init(&g);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", r.port);
    submit(s, url, allow, &g);
    got_wait(&g, 1);
    assert_int_equal(g.status, 302);
    assert_false(g.has_retry_after);
    assert_int_equal(r.accepted, 1);
    sender_free(s);
    responder_stop(&r);
    ssrf_allowlist_free(allow);
}

static void guard_and_bad_urls(void **state)
{
    responder r;
    responder_start(&r, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 38);
    sender *s;
    char err[128], url[64];
    assert_int_equal(sender_new(1, &s, err, sizeof(err)), PL_OK);
    static const struct {
        const char *fmt;
        ssrf_verdict v;
        const char *in_error;
    } rows[] = {
        {"http://127.0.0.1:%d/", SSRF_LOOPBACK, "before connecting"},
        {"http://0x7f.1:%d/", SSRF_LOOPBACK, "loopback"},
        {"http://[::1]:%d/", SSRF_LOOPBACK, "loopback"},
        {"http://[::ffff:127.0.0.1]:%d/", SSRF_LOOPBACK, "loopback"},
        {"http://localhost:%d/", SSRF_LOOPBACK, "SSRF guard"},
        {"http://169.254.169.254:%d/", SSRF_LINK_LOCAL, "link-local"},
        {"http://foo.127.0.0.1:%d/", SSRF_RESERVED, "looks like an IPv4"},
        {"ftp://example.com:%d/", SSRF_OK, "only http and https"},
        {"nonsense %d", SSRF_OK, "bad URL"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        got g;
        got_init(&g);
        snprintf(url, sizeof(url), rows[i].fmt, r.port);
        submit(s, url, NULL, &g);
        got_wait(&g, 1);
        if (g.ssrf != rows[i].v || !strstr(g.error, rows[i].in_error))
            print_error("row %zu: %s -> %d %s\n", i, url, g.ssrf, g.error);
        assert_int_equal(g.status, 0);
        assert_int_equal(g.ssrf, rows[i].v);
        assert_non_null(strstr(g.error, rows[i].in_error));
    }
    assert_int_equal(r.accepted, 0);
    sender_request bad = {.url = NULL, .done = on_done};
    assert_int_equal(sender_submit(s, &bad), PL_EINVAL);
    sender_free(s);
    responder_stop(&r);
}

static void stop_cancels_in_flight(void **state)
{
    responder r;
    responder_start(&r, NULL, 0); /* never answers */
    ssrf_allowlist *allow = loopback();
    sender *s;
    char err[128], url[64];
    assert_int_equal(sender_new(4, &s, err, sizeof(err)), PL_OK);
    got g;
    got_init(&g);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", r.port);
    for (int i = 0; i < 3; i++)
        submit(s, url, allow, &g);
    pthread_mutex_lock(&r.lock);
    while (r.accepted < 3)
        pthread_cond_wait(&r.cond, &r.lock);
    pthread_mutex_unlock(&r.lock);
    sender_free(s); /* the callbacks run before it returns */
    assert_int_equal(g.n, 3);
    assert_int_equal(g.status, 0);
    assert_non_null(strstr(g.error, "cancelled"));
    responder_stop(&r);
    ssrf_allowlist_free(allow);
    sender_free(NULL);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(captures_the_answer),
        cmocka_unit_test(redirect_not_followed),
        cmocka_unit_test(guard_and_bad_urls),
        cmocka_unit_test(stop_cancels_in_flight),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
