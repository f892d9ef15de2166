/* The outbound HTTP sender for webhooks: one thread running a libuv loop that
 * drives libcurl's multi interface. Requests come from any thread; each is
 * checked by the SSRF guard (hooks/ssrf.h) on its URL and on every address it
 * resolves to, never follows a redirect, and speaks only http and https. */
#ifndef PL_SENDER_H
#define PL_SENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hooks/ssrf.h"

#define SENDER_CONNECT_TIMEOUT_MS 5000
#define SENDER_TIMEOUT_MS 15000
#define SENDER_BODY_CAPTURE 4096 /* bytes of a response body kept */
#define SENDER_MAX_CONNECTIONS 16

typedef struct sender sender;

/* The outcome of one request. Everything points into the sender's memory,
 * valid only during the completion callback: copy what you keep. */
typedef struct sender_result {
    int status;              /* the HTTP status, or 0 without a complete answer */
    const char *error;       /* "" when answered; else why not (a libcurl message, or
                                the SSRF guard's, or "cancelled: the sender stopped") */
    ssrf_verdict ssrf;       /* != SSRF_OK when the guard refused the URL or every address
                                tried (SSRF_OK whenever there is a status) */
    const char *address;     /* the address connected to (or refused), "" if none */
    int64_t latency_us;      /* from the start of the transfer to its end */
    const char *retry_after; /* the Retry-After header, or NULL */
    const char *delivery;    /* the webhook-delivery header, or NULL */
    const char *body;        /* the first SENDER_BODY_CAPTURE bytes of the body */
    size_t body_len;
    bool body_truncated; /* the body was longer: the rest was not read (the connection
                            is closed), and the status stands */
} sender_result;

/* Called exactly once per submitted request, ON THE SENDER THREAD: it must
 * not block, and a caller that lives on another thread posts what it needs
 * back to it (its inbox, a condition variable). */
typedef void (*sender_done_fn)(const sender_result *r, void *user);

/* A request to send. sender_submit copies url, headers and body; allow is
 * borrowed and must stay alive until done has been called. */
typedef struct sender_request {
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" lines */
    size_t n_headers;
    const void *body; /* POSTed; NULL with body_len 0 is an empty POST */
    size_t body_len;
    int64_t connect_timeout_ms;  /* 0: SENDER_CONNECT_TIMEOUT_MS */
    int64_t timeout_ms;          /* the whole request; 0: SENDER_TIMEOUT_MS */
    const ssrf_allowlist *allow; /* networks admitted although the guard refuses them; NULL: none */
    sender_done_fn done;         /* required */
    void *user;
} sender_request;

/* Starts a sender with at most max_connections open connections (0:
 * SENDER_MAX_CONNECTIONS). The process must have called
 * curl_global_init before (cli/main.c does, first thing). Returns PL_OK
 * with *out (free with sender_free), or PL_ENOMEM / PL_ERR with err set. */
int sender_new(size_t max_connections, sender **out, char *err, size_t errlen);

/* Called ON THE SENDER THREAD after a round of completions (the done
 * callbacks run in one iteration of its loop, for every socket found
 * ready): a caller whose done
 * callbacks only queue results can hand them over and wake its thread once
 * per round here, rather than once per request. */
typedef void (*sender_flush_fn)(void *user);

/* Sets the round callback (NULL: none). Call it before the first
 * sender_submit; it stays until sender_free, which calls it after the
 * cancellations it makes. */
void sender_set_flush(sender *s, sender_flush_fn fn, void *user);

/* Queues a request, from any thread. On PL_OK done will be called exactly
 * once, on the sender thread, even when the sender stops first. PL_EINVAL
 * (no url or done), PL_ENOMEM, or PL_ERR once sender_free has begun: done
 * is then never called. */
int sender_submit(sender *s, const sender_request *req);

/* Stops the sender: requests queued or in flight complete with the error
 * "cancelled: the sender stopped" (their callbacks run on the sender thread
 * before this returns), then joins the thread and frees everything. Call it
 * from a thread other than the sender's, once. NULL is allowed. */
void sender_free(sender *s);

#endif
