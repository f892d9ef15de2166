/* The webhook HTTP sender (see sender.h): libcurl's multi interface on a
 * libuv loop (socket and timer callbacks mapped to uv_poll_t and uv_timer_t),
 * a locked queue plus uv_async for submissions, and the SSRF guard applied
 * to the URL's host before anything and to each resolved address in
 * CURLOPT_OPENSOCKETFUNCTION, so libcurl connects to exactly what was checked. */
#include "hooks/sender.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "util/clock.h"
#include "util/mem.h"
#include "util/status.h"

#define HEADER_VALUE_MAX 256
/* Easy handles kept for the next requests: setting one up (its allocation
 * and a score of options, some copied) cost more than a loopback request. */
#define EASY_POOL_MAX 64
/* URLs kept parsed and judged: an endpoint's URL is the same for every
 * delivery, parsing it again per request cost a tenth of the sender. */
#define URL_CACHE_MAX 32

typedef struct job job;

/* A URL that passed check_url, parsed once. cu is shared read-only by the
 * jobs using it (libcurl duplicates it per transfer); an entry is replaced
 * only while no job refers to it. */
typedef struct url_ent {
    char *url;
    const ssrf_allowlist *allow;
    CURLU *cu;
    char address[INET6_ADDRSTRLEN]; /* what check_host judged, "" for a name */
    size_t refs;
} url_ent;

struct sender {
    uv_loop_t loop;
    uv_async_t wake;
    uv_timer_t timer;
    uv_check_t round; /* ends each loop iteration's round (end_round) */
    uv_thread_t thread;
    CURLM *multi;
    uv_mutex_t lock; /* guards queue and stopping */
    job *queue, *queue_tail;
    bool stopping;
    job *active; /* in flight on the multi handle; sender thread only */
    /* Sender thread only: */
    CURL *pool[EASY_POOL_MAX]; /* idle easy handles, their fixed options set */
    size_t npool;
    url_ent urls[URL_CACHE_MAX];
    size_t url_next; /* the next entry to replace */
    bool finished;   /* a job finished in this callback round (on_flush due) */
    sender_flush_fn on_flush;
    void *flush_user;
    /* The watches of the connection sockets open_socket made, by fd, kept
     * from one request to the next: curl drops a socket (REMOVE) after
     * each transfer and wants it again for the next on the same
     * connection, and a watch closed and made again cost six epoll_ctl a
     * request. Freed in close_socket. */
    struct watch **kept;
    size_t nkept;
};

struct job {
    job *next, *prev;
    sender *s;
    char *url;
    struct curl_slist *headers;
    char *body;
    size_t body_len;
    int64_t connect_timeout_ms, timeout_ms;
    const ssrf_allowlist *allow;
    sender_done_fn done;
    void *user;
    CURL *easy;
    CURLU *cu;     /* owned when url_ent is NULL */
    url_ent *uent; /* the cached parse this job uses, or NULL */
    int64_t start_us;
    ssrf_verdict ssrf;
    char address[INET6_ADDRSTRLEN];
    char errbuf[CURL_ERROR_SIZE];
    char retry_after[HEADER_VALUE_MAX], delivery[HEADER_VALUE_MAX];
    bool has_retry_after, has_delivery, truncated;
    char resp[SENDER_BODY_CAPTURE];
    size_t resp_len;
};

/* A socket libcurl asked us to watch. */
typedef struct watch {
    uv_poll_t poll;
    curl_socket_t fd;
    sender *s;
    int ev;     /* the events polled for (uv_poll_start costs two epoll_ctl) */
    bool kept;  /* a connection socket of ours: kept in s->kept until closed */
    bool owned; /* curl watches it now (between its first wish and REMOVE) */
} watch;

/* ---- jobs --------------------------------------------------------------- */

/* An easy handle back to the pool (its per-request pointers are set again
 * before any reuse), or cleaned up when the pool is full. */
static void easy_release(sender *s, CURL *e)
{
    if (s && s->npool < EASY_POOL_MAX)
        s->pool[s->npool++] = e;
    else
        curl_easy_cleanup(e);
}

static void job_free(job *j)
{
    if (!j) return;
    if (j->easy) easy_release(j->s, j->easy);
    if (j->uent)
        j->uent->refs--;
    else if (j->cu)
        curl_url_cleanup(j->cu);
    curl_slist_free_all(j->headers);
    pl_free(j->url);
    pl_free(j->body);
    pl_free(j);
}

/* Calls the job's callback with what it got, then frees it. */
static void job_finish(job *j, int status, const char *error)
{
    sender_result r = {
        .status = status,
        .error = error ? error : "",
        .ssrf = j->ssrf,
        .address = j->address,
        .latency_us = j->start_us ? clock_mono_us() - j->start_us : 0,
        .retry_after = j->has_retry_after ? j->retry_after : NULL,
        .delivery = j->has_delivery ? j->delivery : NULL,
        .body = j->resp,
        .body_len = j->resp_len,
        .body_truncated = j->truncated,
    };
    j->done(&r, j->user);
    if (j->s) j->s->finished = true;
    job_free(j);
}

static job *job_new(const sender_request *req)
{
    job *j = pl_calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->url = pl_strdup(req->url);
    j->body = pl_malloc(req->body_len ? req->body_len : 1);
    if (!j->url || !j->body) goto fail;
    if (req->body_len) memcpy(j->body, req->body, req->body_len);
    j->body_len = req->body_len;
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *l = curl_slist_append(j->headers, req->headers[i]);
        if (!l) goto fail;
        j->headers = l;
    }
    /* curl would wait for a 100 Continue on larger bodies: a round trip
     * a webhook receiver never needs. */
    struct curl_slist *l = curl_slist_append(j->headers, "Expect:");
    if (!l) goto fail;
    j->headers = l;
    j->connect_timeout_ms =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : SENDER_CONNECT_TIMEOUT_MS;
    j->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : SENDER_TIMEOUT_MS;
    j->allow = req->allow;
    j->done = req->done;
    j->user = req->user;
    return j;
fail:
    job_free(j);
    return NULL;
}

/* ---- SSRF --------------------------------------------------------------- */

static void set_address(job *j, const struct sockaddr *sa)
{
    const void *a = sa->sa_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (!inet_ntop(sa->sa_family, a, j->address, sizeof(j->address))) j->address[0] = '\0';
}

static void on_poll(uv_poll_t *p, int status, int events);

static void free_watch(uv_handle_t *h)
{
    pl_free(h->data);
}

/* A new watch of fd (not polling yet), or NULL. */
static watch *watch_new(sender *s, curl_socket_t fd)
{
    watch *w = pl_calloc(1, sizeof(*w));
    if (!w) return NULL;
    if (uv_poll_init_socket(&s->loop, &w->poll, fd)) {
        pl_free(w);
        return NULL;
    }
    w->fd = fd;
    w->s = s;
    w->poll.data = w;
    return w;
}

/* Makes the kept watch of a socket open_socket made. Without memory the
 * socket is watched the plain way (a watch per transfer). */
static void keep_watch(sender *s, curl_socket_t fd)
{
    if (!s || fd < 0) return;
    if ((size_t)fd >= s->nkept) {
        size_t n = (size_t)fd + 16;
        watch **k = pl_realloc(s->kept, n * sizeof(*k));
        if (!k) return;
        memset(k + s->nkept, 0, (n - s->nkept) * sizeof(*k));
        s->kept = k;
        s->nkept = n;
    }
    watch *w = s->kept[fd] ? NULL : watch_new(s, fd);
    if (!w) return;
    w->kept = true;
    s->kept[fd] = w;
}

/* curl closes a connection socket of ours: its kept watch goes first, so
 * libuv never polls a number the system may hand out again. */
static int close_socket(void *clientp, curl_socket_t fd)
{
    sender *s = clientp;
    if (fd >= 0 && (size_t)fd < s->nkept && s->kept[fd]) {
        watch *w = s->kept[fd];
        s->kept[fd] = NULL;
        uv_poll_stop(&w->poll);
        /* curl says REMOVE before it closes; should it not, the REMOVE
         * still to come closes the watch the plain way. */
        w->kept = false;
        if (!w->owned) uv_close((uv_handle_t *)&w->poll, free_watch);
    }
    return close(fd);
}

/* libcurl hands every address it is about to connect to here: the guard
 * judges the very address, so a second DNS answer cannot swap it. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    job *j = clientp;
    if (addr->family != AF_INET && addr->family != AF_INET6) {
        j->ssrf = SSRF_FAMILY;
        return CURL_SOCKET_BAD;
    }
    set_address(j, &addr->addr);
    ssrf_verdict v = ssrf_check(&addr->addr, j->allow);
    if (v != SSRF_OK) {
        j->ssrf = v;
        return CURL_SOCKET_BAD;
    }
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (fd != CURL_SOCKET_BAD) keep_watch(j->s, fd);
    return fd;
}

/* The URL's host judged before any lookup: an IP literal by its address, an
 * odd IPv4 spelling that resolvers disagree on refused outright. Writes the
 * refusal into err and returns -1, or 0 to go on. */
static int check_host(job *j, const char *host, char *err, size_t errlen)
{
    size_t n = strlen(host);
    char lit[INET6_ADDRSTRLEN + 2];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (host[0] == '[' && n > 2 && n - 2 < sizeof(lit)) {
        memcpy(lit, host + 1, n - 2);
        lit[n - 2] = '\0';
        char *zone = strchr(lit, '%');
        if (zone) *zone = '\0';
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        if (inet_pton(AF_INET6, lit, &s6->sin6_addr) != 1) return 0; /* curl will refuse it */
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        int r = ssrf_parse_host_ipv4(host, &s4->sin_addr);
        if (r < 0) {
            j->ssrf = SSRF_RESERVED;
            snprintf(err, errlen, "refused: the host '%s' looks like an IPv4 address but is none",
                     host);
            return -1;
        }
        if (r == 0) return 0; /* a name: judged when resolved */
        s4->sin_family = AF_INET;
    }
    set_address(j, (struct sockaddr *)&ss);
    ssrf_verdict v = ssrf_check((struct sockaddr *)&ss, j->allow);
    if (v == SSRF_OK) return 0;
    j->ssrf = v;
    snprintf(err, errlen, "refused by the SSRF guard before connecting: %s (%s)", ssrf_why(v),
             j->address);
    return -1;
}

/* Parses the URL, keeps only http and https, and judges a literal host.
 * 0, or -1 with err set. */
static int check_url(job *j, char *err, size_t errlen)
{
    j->cu = curl_url();
    if (!j->cu) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    CURLUcode uc = curl_url_set(j->cu, CURLUPART_URL, j->url, CURLU_NON_SUPPORT_SCHEME);
    if (uc != CURLUE_OK) {
        snprintf(err, errlen, "bad URL: %s", curl_url_strerror(uc));
        return -1;
    }
    char *scheme = NULL, *host = NULL;
    int rc = 0;
    if (curl_url_get(j->cu, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcasecmp(scheme, "http") && strcasecmp(scheme, "https"))) {
        snprintf(err, errlen, "bad URL: only http and https are allowed");
        rc = -1;
    } else if (curl_url_get(j->cu, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, errlen, "bad URL: no host");
        rc = -1;
    } else {
        rc = check_host(j, host, err, errlen);
    }
    curl_free(scheme);
    curl_free(host);
    return rc;
}

/* Keeps j's accepted URL parsed for the next jobs: j's handle moves into a
 * cache entry no job uses (none free: j keeps its own). */
static void url_keep(sender *s, job *j)
{
    for (size_t k = 0; k < URL_CACHE_MAX; k++) {
        url_ent *u = &s->urls[(s->url_next + k) % URL_CACHE_MAX];
        if (u->refs) continue;
        char *copy = pl_strdup(j->url);
        if (!copy) return;
        pl_free(u->url);
        if (u->cu) curl_url_cleanup(u->cu);
        u->url = copy;
        u->allow = j->allow;
        u->cu = j->cu;
        snprintf(u->address, sizeof(u->address), "%s", j->address);
        u->refs = 1;
        j->uent = u;
        s->url_next = (size_t)(u - s->urls + 1) % URL_CACHE_MAX;
        return;
    }
}

/* check_url through the cache: a URL accepted before (with the same
 * allowlist) is not parsed or judged again; refusals are never cached. */
static int check_url_cached(sender *s, job *j, char *err, size_t errlen)
{
    for (size_t k = 0; k < URL_CACHE_MAX; k++) {
        url_ent *u = &s->urls[k];
        if (!u->url || u->allow != j->allow || strcmp(u->url, j->url)) continue;
        u->refs++;
        j->uent = u;
        j->cu = u->cu;
        memcpy(j->address, u->address, sizeof(j->address));
        return 0;
    }
    if (check_url(j, err, errlen)) return -1;
    url_keep(s, j);
    return 0;
}

static void url_cache_free(sender *s)
{
    for (size_t k = 0; k < URL_CACHE_MAX; k++) {
        pl_free(s->urls[k].url);
        if (s->urls[k].cu) curl_url_cleanup(s->urls[k].cu);
    }
}

/* ---- transfer callbacks ------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    job *j = userp;
    size_t n = size * nmemb, room = sizeof(j->resp) - j->resp_len;
    size_t take = n < room ? n : room;
    memcpy(j->resp + j->resp_len, data, take);
    j->resp_len += take;
    if (take == n) return n;
    /* Past the capture: stop reading rather than let a receiver stream
     * for the whole timeout; check_done still reports the status. */
    j->truncated = true;
    return 0;
}

/* Copies the value of a "Name: value" line if it is name, trimmed. */
static bool take_header(const char *line, size_t n, const char *name, char *out)
{
    size_t nl = strlen(name);
    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl)) return false;
    const char *v = line + nl + 1;
    size_t len = n - nl - 1;
    while (len && (*v == ' ' || *v == '\t'))
        v++, len--;
    while (len &&
           (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= HEADER_VALUE_MAX) len = HEADER_VALUE_MAX - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

static size_t on_header(char *line, size_t size, size_t nmemb, void *userp)
{
    job *j = userp;
    size_t n = size * nmemb;
    /* A new status line (after a 1xx) starts a new set of headers. */
    if (n >= 5 && !memcmp(line, "HTTP/", 5)) j->has_retry_after = j->has_delivery = false;
    if (take_header(line, n, "retry-after", j->retry_after)) j->has_retry_after = true;
    if (take_header(line, n, "webhook-delivery", j->delivery)) j->has_delivery = true;
    return n;
}

/* ---- the multi handle on the loop --------------------------------------- */

static void check_done(sender *s)
{
    CURLMsg *m;
    int left;
    while (s->multi && (m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        job *j = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
        CURLcode res = m->data.result;
        curl_multi_remove_handle(s->multi, j->easy);
        if (j->prev)
            j->prev->next = j->next;
        else
            s->active = j->next;
        if (j->next) j->next->prev = j->prev;
        long status = 0;
        char err[CURL_ERROR_SIZE + 128] = "";
        if (res == CURLE_OK || (res == CURLE_WRITE_ERROR && j->truncated)) {
            curl_easy_getinfo(j->easy, CURLINFO_RESPONSE_CODE, &status);
            /* Another address of the name may have been refused first. */
            j->ssrf = SSRF_OK;
            char *ip = NULL;
            if (curl_easy_getinfo(j->easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK && ip)
                snprintf(j->address, sizeof(j->address), "%s", ip);
        } else if (j->ssrf != SSRF_OK) {
            snprintf(err, sizeof(err), "refused by the SSRF guard: %s (%s)", ssrf_why(j->ssrf),
                     j->address);
        } else {
            snprintf(err, sizeof(err), "%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(res));
        }
        job_finish(j, (int)status, err);
    }
}

/* Ends a round, one iteration of the loop (every socket it found ready):
 * the owner hears once of what finished in it. */
static void end_round(sender *s)
{
    if (!s->finished) return;
    s->finished = false;
    if (s->on_flush) s->on_flush(s->flush_user);
}

static void on_check(uv_check_t *c)
{
    end_round(c->data);
}

static void on_timer(uv_timer_t *t)
{
    sender *s = t->data;
    int running;
    if (!s->multi) return;
    curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(s);
}

static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    sender *s = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&s->timer);
    else
        uv_timer_start(&s->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    watch *w = p->data;
    if (!w->owned) {
        /* An idle kept connection stirred (the receiver closed it): curl
         * finds out when it reuses it; stop polling until then. */
        uv_poll_stop(p);
        w->ev = 0;
        return;
    }
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    if (!w->s->multi) return;
    curl_multi_socket_action(w->s->multi, w->fd, flags, &running);
    check_done(w->s);
}

static int socket_fn(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    sender *s = userp;
    watch *w = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (!w) return 0;
        curl_multi_assign(s->multi, fd, NULL);
        w->owned = false;
        /* A kept watch goes on polling what it did: the next transfer on
         * its connection most often wants the same, at no syscall. */
        if (w->kept) return 0;
        uv_poll_stop(&w->poll);
        uv_close((uv_handle_t *)&w->poll, free_watch);
        return 0;
    }
    if (!w) {
        w = fd >= 0 && (size_t)fd < s->nkept && s->kept[fd] ? s->kept[fd] : watch_new(s, fd);
        if (!w) return -1;
        w->owned = true;
        curl_multi_assign(s->multi, fd, w);
    }
    int ev = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    if (ev != w->ev || !uv_is_active((uv_handle_t *)&w->poll)) {
        uv_poll_start(&w->poll, ev, on_poll);
        w->ev = ev;
    }
    return 0;
}

/* ---- starting and stopping jobs ----------------------------------------- */

/* A new easy handle with the options every request shares. */
static CURL *easy_new(sender *s)
{
    CURL *e = curl_easy_init();
    if (!e) return NULL;
    int bad = 0;
    /* The sender, not a job: curl keeps these with the connection, which
     * outlives the job that opened it. */
    bad |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    bad |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, s);
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* No proxy from the environment: the guard must judge the receiver's
     * address, not a proxy's. */
    bad |= curl_easy_setopt(e, CURLOPT_PROXY, "");
    bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    bad |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    bad |= curl_easy_setopt(e, CURLOPT_USERAGENT, "Parley-Webhooks/1");
    if (!bad) return e;
    curl_easy_cleanup(e);
    return NULL;
}

/* An easy handle for j, from the pool or new: every option that points
 * at a job is set here, so nothing of the previous job stays in use. */
static int setup_easy(sender *s, job *j)
{
    CURL *e = j->easy = s->npool ? s->pool[--s->npool] : easy_new(s);
    if (!e) return -1;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_CURLU, j->cu);
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)j);
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->errbuf);
    bad |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, j);
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)j->connect_timeout_ms);
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)j->timeout_ms);
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, j->headers);
    /* The size before the data: the body is binary, never strlen'ed. */
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)j->body_len);
    bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, j->body);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, j);
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, j);
    return bad ? -1 : 0;
}

static void start_job(sender *s, job *j)
{
    char err[512];
    if (check_url_cached(s, j, err, sizeof(err))) {
        job_finish(j, 0, err);
        return;
    }
    if (setup_easy(s, j)) {
        job_finish(j, 0, "cannot set up the request (out of memory?)");
        return;
    }
    j->start_us = clock_mono_us();
    if (curl_multi_add_handle(s->multi, j->easy) != CURLM_OK) {
        job_finish(j, 0, "cannot start the request");
        return;
    }
    j->next = s->active;
    if (s->active) s->active->prev = j;
    s->active = j;
}

#define CANCELLED "cancelled: the sender stopped"

static void close_any(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h)) return;
    uv_close(h, h->type == UV_POLL ? free_watch : NULL);
}

/* Runs on the sender thread: every job completes, then the loop ends. */
static void shut_down(sender *s)
{
    while (s->active) {
        job *j = s->active;
        s->active = j->next;
        curl_multi_remove_handle(s->multi, j->easy);
        job_finish(j, 0, CANCELLED);
    }
    /* Cleanup closes cached connections through socket_fn, while the
     * loop can still close their watches. */
    curl_multi_cleanup(s->multi);
    s->multi = NULL;
    while (s->npool)
        curl_easy_cleanup(s->pool[--s->npool]);
    pl_free(s->kept); /* the watches left close below */
    s->kept = NULL;
    s->nkept = 0;
    url_cache_free(s);
    uv_walk(&s->loop, close_any, NULL);
}

static void on_wake(uv_async_t *a)
{
    sender *s = a->data;
    uv_mutex_lock(&s->lock);
    job *q = s->queue;
    bool stopping = s->stopping;
    s->queue = s->queue_tail = NULL;
    uv_mutex_unlock(&s->lock);
    while (q) {
        job *j = q;
        q = q->next;
        j->next = NULL;
        if (stopping)
            job_finish(j, 0, CANCELLED);
        else
            start_job(s, j);
    }
    if (stopping) {
        shut_down(s); /* closes the check handle: its round ends here */
        end_round(s);
    }
}

static void run(void *arg)
{
    sender *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

/* ---- API ---------------------------------------------------------------- */

int sender_new(size_t max_connections, sender **out, char *err, size_t errlen)
{
    *out = NULL;
    sender *s = pl_calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return PL_ENOMEM;
    }
    if (uv_loop_init(&s->loop)) {
        pl_free(s);
        snprintf(err, errlen, "cannot create the sender's event loop");
        return PL_ERR;
    }
    s->multi = curl_multi_init();
    uv_mutex_init(&s->lock);
    uv_async_init(&s->loop, &s->wake, on_wake);
    uv_timer_init(&s->loop, &s->timer);
    /* Runs after the loop's I/O callbacks of each iteration. */
    uv_check_init(&s->loop, &s->round);
    uv_check_start(&s->round, on_check);
    s->wake.data = s->timer.data = s->round.data = s;
    if (!s->multi) goto fail;
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, socket_fn);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)(max_connections ? max_connections : SENDER_MAX_CONNECTIONS));
    if (uv_thread_create(&s->thread, run, s)) goto fail;
    *out = s;
    return PL_OK;
fail:
    if (s->multi) curl_multi_cleanup(s->multi);
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_close((uv_handle_t *)&s->timer, NULL);
    uv_close((uv_handle_t *)&s->round, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    uv_mutex_destroy(&s->lock);
    pl_free(s);
    snprintf(err, errlen, "cannot start the sender");
    return PL_ERR;
}

void sender_set_flush(sender *s, sender_flush_fn fn, void *user)
{
    s->on_flush = fn;
    s->flush_user = user;
}

int sender_submit(sender *s, const sender_request *req)
{
    if (!req->url || !req->done) return PL_EINVAL;
    job *j = job_new(req);
    if (!j) return PL_ENOMEM;
    j->s = s;
    uv_mutex_lock(&s->lock);
    if (s->stopping) {
        uv_mutex_unlock(&s->lock);
        job_free(j);
        return PL_ERR;
    }
    if (s->queue_tail)
        s->queue_tail->next = j;
    else
        s->queue = j;
    s->queue_tail = j;
    /* Sent under the lock: once stopping is set nobody sends again, so no
     * send can reach the handle after the sender thread closes it. */
    uv_async_send(&s->wake);
    uv_mutex_unlock(&s->lock);
    return PL_OK;
}

void sender_free(sender *s)
{
    if (!s) return;
    uv_mutex_lock(&s->lock);
    s->stopping = true;
    uv_async_send(&s->wake);
    uv_mutex_unlock(&s->lock);
    uv_thread_join(&s->thread);
    uv_loop_close(&s->loop);
    uv_mutex_destroy(&s->lock);
    pl_free(s);
}
