/* Server lifecycle, worker threads and the hub that carries the engine's
 * committed pubs and finished requests to the workers in engine order. Each
 * worker owns its connections and subscription table; the only cross-thread
 * traffic is the inbox (mutex + uv_async) and refcounted pubs. */
#include "net/server.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/server_int.h"
#include "obs/log.h"
#include "util/clock.h"
#include "util/mem.h"

/* ======================================================================
 * Inbox and hub
 * ====================================================================== */

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

static void call_unref(worker_call *call)
{
    if (atomic_fetch_sub(&call->refs, 1) == 1) call->release(call);
}

static void drop_msg(inbox_msg m)
{
    if (m.type == INBOX_PUB) pub_unref(m.ptr);
    else if (m.type == INBOX_CALL) call_unref(m.ptr);
    else engine_req_free(m.ptr);
}

void server_call_all(server *srv, worker_call *call)
{
    atomic_fetch_add(&call->refs, srv->nworkers - 1);
    for (int i = 0; i < srv->nworkers; i++) {
        inbox_msg m = {INBOX_CALL, call};
        worker_post(srv->workers[i], &m, 1);
    }
}

void worker_post(worker *w, const inbox_msg *msgs, size_t n)
{
    pthread_mutex_lock(&w->inbox_lock);
    for (size_t i = 0; i < n; i++)
        if (vec_push(&w->inbox, &w->inbox_len, &w->inbox_cap, msgs[i])) drop_msg(msgs[i]);
    pthread_mutex_unlock(&w->inbox_lock);
    uv_async_send(&w->wakeup);
}

void server_broadcast_pub(server *srv, pl_pub *pub)
{
    for (int i = 0; i < srv->nworkers; i++) {
        inbox_msg m = {INBOX_PUB, pub_ref(pub)};
        worker_post(srv->workers[i], &m, 1);
    }
}

/* Engine sink (engine thread): committed pubs go to every worker, each
 * finished request to the worker that asked, preserving the engine's order
 * so a READ reply never overtakes a pub it already covers. */
static void hub_sink(void *ctx, engine_req **reqs, size_t n)
{
    server *srv = ctx;
    for (size_t i = 0; i < n; i++) {
        engine_req *r = reqs[i];
        if (r->op == ENGINE_PUBLISH && r->status == PL_OK && !r->duplicate) {
            for (int k = 0; k < srv->nworkers; k++) {
                inbox_msg m = {INBOX_PUB, pub_ref(r->pub)};
                if (vec_push(&srv->stage[k], &srv->stage_len[k], &srv->stage_cap[k], m))
                    pub_unref(r->pub);
            }
        }
        worker *w = r->owner;
        inbox_msg m = {INBOX_DONE, r};
        if (!w || vec_push(&srv->stage[w->index], &srv->stage_len[w->index],
                           &srv->stage_cap[w->index], m))
            engine_req_free(r);
    }
    for (int k = 0; k < srv->nworkers; k++) {
        if (!srv->stage_len[k]) continue;
        worker_post(srv->workers[k], srv->stage[k], srv->stage_len[k]);
        srv->stage_len[k] = 0;
    }
}

/* ======================================================================
 * Worker thread
 * ====================================================================== */

static void drain_inbox(worker *w)
{
    pthread_mutex_lock(&w->inbox_lock);
    inbox_msg *msgs = w->inbox;
    size_t n = w->inbox_len;
    size_t cap = w->inbox_cap;
    w->inbox = w->spare;
    w->inbox_cap = w->spare_cap;
    w->inbox_len = 0;
    pthread_mutex_unlock(&w->inbox_lock);
    w->now_ms = clock_wall_ms();
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].type == INBOX_PUB) {
            fanout_pub(w, msgs[i].ptr);
            pub_unref(msgs[i].ptr);
        } else if (msgs[i].type == INBOX_CALL) {
            worker_call *call = msgs[i].ptr;
            call->fn(w, call);
            call_unref(call);
        } else {
            session_on_engine_done(w, msgs[i].ptr);
        }
    }
    w->spare = msgs;
    w->spare_cap = cap;
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_wakeup(uv_async_t *a)
{
    worker *w = a->data;
    if (atomic_load(&w->stop_accepting) && !w->listener_closed) {
        w->listener_closed = 1;
        close_handle((uv_handle_t *)&w->listener);
    }
    drain_inbox(w);
    if (atomic_load(&w->shutting_down) == 1) {
        atomic_store(&w->shutting_down, 2);
        for (conn *c = w->all, *next; c; c = next) {
            next = c->next;
            conn_shutdown(c);
        }
        w->now_ms = clock_wall_ms();
        uv_timer_set_repeat(&w->tick, 50);
        uv_timer_again(&w->tick);
    }
}

static void on_flush(uv_check_t *h)
{
    conn_flush_dirty(h->data);
}

static void on_tick(uv_timer_t *t)
{
    worker *w = t->data;
    w->now_ms = clock_wall_ms();
    worker_tick_conns(w);
    if (atomic_load(&w->shutting_down) == 2 && !w->all) {
        close_handle((uv_handle_t *)&w->wakeup);
        close_handle((uv_handle_t *)&w->flusher);
        close_handle((uv_handle_t *)&w->tick);
        close_handle((uv_handle_t *)&w->listener);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    if (status < 0) return;
    conn_on_accept(listener->data, listener);
}

static int listen_reuseport(worker *w, char *err, size_t errlen)
{
    server *srv = w->srv;
    struct sockaddr_storage addr;
    int rc;
    if (uv_ip4_addr(srv->cfg.listen_host, srv->cfg.listen_port, (struct sockaddr_in *)&addr) &&
        uv_ip6_addr(srv->cfg.listen_host, srv->cfg.listen_port, (struct sockaddr_in6 *)&addr)) {
        snprintf(err, errlen, "invalid listen host %s", srv->cfg.listen_host);
        return -1;
    }
    if ((rc = uv_tcp_init_ex(&w->loop, &w->listener, addr.ss_family))) goto fail;
    w->listener.data = w;
    uv_os_fd_t fd;
    if ((rc = uv_fileno((uv_handle_t *)&w->listener, &fd))) goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if ((rc = uv_tcp_bind(&w->listener, (struct sockaddr *)&addr, 0))) goto fail;
    if ((rc = uv_listen((uv_stream_t *)&w->listener, 4096, on_connection))) goto fail;
    return 0;
fail:
    snprintf(err, errlen, "listen on %s:%d: %s", srv->cfg.listen_host, srv->cfg.listen_port,
             uv_strerror(rc));
    return -1;
}

static int worker_init(worker *w, server *srv, int index, char *err, size_t errlen)
{
    w->srv = srv;
    w->index = index;
    map_init(&w->channels);
    map_init(&w->conns);
    map_init(&w->users);
    proto_batch_init(&w->batch);
    sbuf_init(&w->scratch);
    pthread_mutex_init(&w->inbox_lock, NULL);
    w->now_ms = clock_wall_ms();
    uv_loop_init(&w->loop);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_check_init(&w->loop, &w->flusher);
    w->flusher.data = w;
    uv_check_start(&w->flusher, on_flush);
    uv_timer_init(&w->loop, &w->tick);
    w->tick.data = w;
    uv_timer_start(&w->tick, on_tick, 1000, 1000);
    return listen_reuseport(w, err, errlen);
}

static void worker_main(void *arg)
{
    worker *w = arg;
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    close_handle(h);
}

static void worker_release(worker *w)
{
    /* Walk and close anything left (only on error paths), then drain. */
    uv_walk(&w->loop, walk_close, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    for (size_t i = 0; i < w->inbox_len; i++) drop_msg(w->inbox[i]);
    pl_free(w->inbox);
    pl_free(w->spare);
    pthread_mutex_destroy(&w->inbox_lock);
    for (size_t i = 0; i < w->channels.cap; i++) {
        chan *ch = w->channels.slots[i].value;
        if (!w->channels.slots[i].key) continue;
        pl_free(ch->subs);
        pl_free(ch->key);
        pl_free(ch);
    }
    map_release(&w->channels);
    map_release(&w->conns);
    map_release(&w->users);
    proto_batch_release(&w->batch);
    sbuf_release(&w->scratch);
}

/* ======================================================================
 * Server
 * ====================================================================== */

char *server_dev_secret(const char *data_dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/dev_secret", data_dir);
    char buf[128];
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) n--;
        if (n >= 16) return pl_strndup(buf, n);
    }
    mkdir(data_dir, 0700);
    unsigned char rnd[24];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        snprintf(err, errlen, "no randomness for the development secret");
        return NULL;
    }
    for (size_t i = 0; i < sizeof(rnd); i++) snprintf(buf + 2 * i, 3, "%02x", rnd[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, 48) != 48) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    close(fd);
    return pl_strndup(buf, 48);
}

static int load_tenants(server *srv, char *err, size_t errlen)
{
    config *cfg = &srv->cfg;
    size_t n = cfg->single_tenant ? 1 : cfg->n_tenants;
    srv->tenants = pl_calloc(n, sizeof(*srv->tenants));
    if (!srv->tenants) return -1;
    srv->ntenants = n;
    if (cfg->single_tenant) {
        srv->dev_secret = server_dev_secret(cfg->data_dir, err, errlen);
        if (!srv->dev_secret) return -1;
        srv->tenants[0].id = "default";
        srv->tenants[0].keys = jwt_keys_new();
        if (!srv->tenants[0].keys) return -1;
        return jwt_keys_add_hmac(srv->tenants[0].keys, srv->dev_secret, strlen(srv->dev_secret),
                                 NULL) ? -1 : 0;
    }
    for (size_t i = 0; i < n; i++) {
        const cfg_tenant *t = &cfg->tenants[i];
        srv->tenants[i].id = t->id;
        srv->tenants[i].keys = jwt_keys_new();
        if (!srv->tenants[i].keys) return -1;
        for (size_t k = 0; k < t->n_jwt_secrets; k++)
            if (jwt_keys_add_hmac(srv->tenants[i].keys, t->jwt_secrets[k], strlen(t->jwt_secrets[k]),
                                  NULL))
                goto bad_key;
        for (size_t k = 0; k < t->n_jwt_public_keys; k++)
            if (jwt_keys_add_pem(srv->tenants[i].keys, t->jwt_public_keys[k], NULL)) goto bad_key;
        continue;
    bad_key:
        snprintf(err, errlen, "tenant %s: invalid JWT key", t->id);
        return -1;
    }
    return 0;
}

const tenant_keys *server_tenant(server *srv, const char *id)
{
    if (srv->cfg.single_tenant) return &srv->tenants[0];
    if (!id) return NULL;
    for (size_t i = 0; i < srv->ntenants; i++)
        if (!strcmp(srv->tenants[i].id, id)) return &srv->tenants[i];
    return NULL;
}

server *server_new(config *cfg, char *err, size_t errlen)
{
    server *srv = pl_calloc(1, sizeof(*srv));
    if (!srv) {
        config_release(cfg);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg));
    if (load_tenants(srv, err, errlen)) goto fail;
    srv->presence = presence_new();
    srv->limits = rl_table_new(1 << 20);
    if (!srv->presence || !srv->limits) goto fail;
    srv->nworkers = srv->cfg.workers > 0 ? srv->cfg.workers : (int)uv_available_parallelism();
    if (srv->nworkers < 1) srv->nworkers = 1;
    if (srv->nworkers > 64) srv->nworkers = 64;
    srv->workers = pl_calloc((size_t)srv->nworkers, sizeof(*srv->workers));
    srv->stage = pl_calloc((size_t)srv->nworkers, sizeof(*srv->stage));
    srv->stage_len = pl_calloc((size_t)srv->nworkers, sizeof(size_t));
    srv->stage_cap = pl_calloc((size_t)srv->nworkers, sizeof(size_t));
    if (!srv->workers || !srv->stage || !srv->stage_len || !srv->stage_cap) goto fail;
    engine_opts eo = {
        .data_dir = srv->cfg.data_dir,
        .dedup_window_ms = srv->cfg.dedup_window_ms,
        .ring_size = 128,
        .max_db_bytes = srv->cfg.engine_max_db_bytes,
        .sink = hub_sink,
        .sink_ctx = srv,
        .encode = proto_encode_pub,
    };
    srv->eng = engine_sqlite_new(&eo, err, errlen);
    if (!srv->eng) goto fail;
    return srv;
fail:
    if (!err[0]) snprintf(err, errlen, "out of memory");
    server_free(srv);
    return NULL;
}

void server_free(server *srv)
{
    if (!srv) return;
    engine_free(srv->eng);
    presence_free(srv->presence);
    rl_table_free(srv->limits);
    for (size_t i = 0; i < srv->ntenants; i++) jwt_keys_free(srv->tenants[i].keys);
    pl_free(srv->tenants);
    for (int i = 0; i < srv->nworkers && srv->stage; i++) pl_free(srv->stage[i]);
    for (int i = 0; i < srv->nworkers && srv->workers; i++) pl_free(srv->workers[i]);
    pl_free(srv->workers);
    pl_free(srv->stage);
    pl_free(srv->stage_len);
    pl_free(srv->stage_cap);
    pl_free(srv->dev_secret);
    config_release(&srv->cfg);
    pl_free(srv);
}

void server_render_metrics(server *srv, sbuf *out)
{
    metrics_shard *shards[64];
    for (int i = 0; i < srv->nworkers; i++) shards[i] = &srv->workers[i]->metrics;
    engine_stats es;
    engine_get_stats(srv->eng, &es);
    metrics_render(out, shards, srv->nworkers, session_method_names, session_method_count, &es);
    sbuf_puts(out, "# HELP parley_presence_entries Clients present in channels.\n"
                   "# TYPE parley_presence_entries gauge\nparley_presence_entries ");
    sbuf_u64(out, presence_entries(srv->presence));
    sbuf_putc(out, '\n');
}

static void on_signal(uv_signal_t *sig, int signum)
{
    server *srv = sig->data;
    log_event(LOG_INFO, "shutdown", "signal", signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
    atomic_store(&srv->ready, 0);
    uv_stop(sig->loop);
}

int server_run(server *srv)
{
    char err[512] = "";
    int started = 0, rc = 1;
    signal(SIGPIPE, SIG_IGN);
    if (engine_start(srv->eng)) {
        log_event(LOG_ERROR, "engine_start_failed", NULL);
        return 1;
    }
    for (int i = 0; i < srv->nworkers; i++) {
        worker *w = srv->workers[i] = pl_calloc(1, sizeof(worker));
        if (!w || worker_init(w, srv, i, err, sizeof(err))) goto out;
    }
    for (int i = 0; i < srv->nworkers; i++, started++)
        uv_thread_create(&srv->workers[i]->thread, worker_main, srv->workers[i]);
    atomic_store(&srv->ready, 1);
    char port[16], nw[16];
    snprintf(port, sizeof(port), "%d", srv->cfg.listen_port);
    snprintf(nw, sizeof(nw), "%d", srv->nworkers);
    log_event(LOG_INFO, "listening", "host", srv->cfg.listen_host, "#port", port, "#workers", nw,
              "data_dir", srv->cfg.data_dir, "engine", srv->eng->ops->name, NULL);

    uv_loop_t main_loop;
    uv_loop_init(&main_loop);
    uv_signal_t sigterm, sigint;
    uv_signal_init(&main_loop, &sigterm);
    uv_signal_init(&main_loop, &sigint);
    sigterm.data = sigint.data = srv;
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_run(&main_loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
    uv_run(&main_loop, UV_RUN_DEFAULT);
    uv_loop_close(&main_loop);
    rc = 0;
out:
    if (err[0]) log_event(LOG_ERROR, "startup_failed", "error", err, NULL);
    /* Stop accepting, let every submitted publish commit and its reply reach
     * the workers, then disconnect clients with 4000 and stop the loops. */
    for (int i = 0; i < started; i++) {
        atomic_store(&srv->workers[i]->stop_accepting, 1);
        uv_async_send(&srv->workers[i]->wakeup);
    }
    engine_stop(srv->eng);
    for (int i = 0; i < started; i++) {
        atomic_store(&srv->workers[i]->shutting_down, 1);
        uv_async_send(&srv->workers[i]->wakeup);
    }
    for (int i = 0; i < started; i++) uv_thread_join(&srv->workers[i]->thread);
    for (int i = 0; i < srv->nworkers; i++)
        if (srv->workers[i] && srv->workers[i]->srv) worker_release(srv->workers[i]);
    log_event(LOG_INFO, "stopped", NULL);
    return rc;
}
